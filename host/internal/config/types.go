package config

// typeAliases maps the other names an instance type is known by to the
// type whose plugin serves it: the seed configuration writes
// `type = "ibm"` and `type = "oracle"` for the watsonx and OCI plugins.
var typeAliases = map[string]string{
	"ibm":    "watsonx",
	"oracle": "oci",
}

// CanonicalType returns the plugin type that serves typ: typ itself, or
// the type it is an alias of.
func CanonicalType(typ string) string {
	if t, ok := typeAliases[typ]; ok {
		return t
	}
	return typ
}

// canonicalizeTypes rewrites every instance's type to its canonical form,
// so that the plugin binary, transparent-mode paths and metrics all use
// one name per plugin.
func (f *File) canonicalizeTypes() {
	for i := range f.Providers {
		f.Providers[i].Type = CanonicalType(f.Providers[i].Type)
	}
	for i := range f.Middleware {
		f.Middleware[i].Type = CanonicalType(f.Middleware[i].Type)
	}
	for i := range f.Storage {
		f.Storage[i].Type = CanonicalType(f.Storage[i].Type)
	}
}
