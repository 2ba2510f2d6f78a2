package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Gemini's function parameters and responseSchema are an OpenAPI 3 subset:
// it refuses JSON Schema keywords such as $schema, additionalProperties,
// strict, $ref or const. cleanSchema keeps the keywords Gemini knows,
// resolves local $refs, turns const into a one-value enum and a
// ["T","null"] type into T with nullable.

// schemaKeywords are the keywords Gemini's Schema accepts.
var schemaKeywords = map[string]bool{
	"type": true, "format": true, "title": true, "description": true, "nullable": true, "default": true,
	"items": true, "minItems": true, "maxItems": true, "enum": true, "properties": true, "propertyOrdering": true,
	"required": true, "minProperties": true, "maxProperties": true, "minLength": true, "maxLength": true,
	"pattern": true, "example": true, "anyOf": true, "minimum": true, "maximum": true,
}

// maxSchemaDepth bounds nesting and $ref expansion.
const maxSchemaDepth = 32

// cleanSchema rewrites a JSON Schema for Gemini.
func cleanSchema(raw json.RawMessage) (json.RawMessage, error) {
	var root any
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("schema must be a JSON object")
	}
	c := &cleaner{root: obj}
	out, err := c.clean(obj, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

type cleaner struct {
	root map[string]any
}

func (c *cleaner) clean(s map[string]any, depth int) (map[string]any, error) {
	if depth > maxSchemaDepth {
		return nil, errors.New("schema is nested too deeply (or its $refs are recursive)")
	}
	if ref, ok := s["$ref"].(string); ok {
		target, err := c.resolve(ref)
		if err != nil {
			return nil, err
		}
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range s {
			if k != "$ref" {
				merged[k] = v
			}
		}
		return c.clean(merged, depth+1)
	}
	out := map[string]any{}
	for k, v := range s {
		switch {
		case k == "const":
			out["enum"] = []any{v}
		case k == "type":
			if list, ok := v.([]any); ok {
				var types []any
				for _, t := range list {
					if t == "null" {
						out["nullable"] = true
					} else {
						types = append(types, t)
					}
				}
				switch len(types) {
				case 0:
					out["nullable"] = true
				case 1:
					out["type"] = types[0]
				default:
					var alts []any
					for _, t := range types {
						alts = append(alts, map[string]any{"type": t})
					}
					out["anyOf"] = alts
				}
				continue
			}
			if t, ok := v.(string); ok {
				out["type"] = t
			}
		case k == "oneOf":
			k = "anyOf"
			fallthrough
		case k == "anyOf":
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("%s must be an array", k)
			}
			var subs []any
			for _, x := range list {
				m, ok := x.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s entries must be schemas", k)
				}
				cm, err := c.clean(m, depth+1)
				if err != nil {
					return nil, err
				}
				subs = append(subs, cm)
			}
			out["anyOf"] = subs
		case k == "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return nil, errors.New("properties must be an object")
			}
			cp := map[string]any{}
			for name, x := range props {
				m, ok := x.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("property %q must be a schema", name)
				}
				cm, err := c.clean(m, depth+1)
				if err != nil {
					return nil, err
				}
				cp[name] = cm
			}
			out["properties"] = cp
		case k == "items":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, errors.New("items must be a schema (tuple items are not supported by gemini)")
			}
			cm, err := c.clean(m, depth+1)
			if err != nil {
				return nil, err
			}
			out["items"] = cm
		case schemaKeywords[k]:
			out[k] = v
		}
		// Anything else ($schema, $defs, additionalProperties, strict,
		// examples …) is dropped.
	}
	return out, nil
}

// resolve follows a local reference such as #/$defs/Address.
func (c *cleaner) resolve(ref string) (map[string]any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q: only local references (#/...) are supported", ref)
	}
	var cur any = c.root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q does not name a schema", ref)
	}
	return m, nil
}
