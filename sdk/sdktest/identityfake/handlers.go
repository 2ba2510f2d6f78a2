package identityfake

import (
	"crypto/subtle"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// equal compares a presented credential in constant time; an empty want
// matches nothing.
func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (f *Fake) handler(tls bool) http.Handler {
	mux := http.NewServeMux()
	if tls {
		mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", f.entraDiscovery)
		mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.entraToken)
		return mux
	}
	mux.HandleFunc("POST /{$}", f.awsSTS)
	mux.HandleFunc("GET /v1/credentials", f.containerCredentials)
	mux.HandleFunc("PUT /latest/api/token", f.imdsSession)
	mux.HandleFunc("GET /latest/meta-data/iam/security-credentials/{role...}", f.imdsCredentials)
	mux.HandleFunc("GET /computeMetadata/v1/{path...}", f.gceMetadata)
	mux.HandleFunc("POST /v1/token", f.googleSTS)
	mux.HandleFunc("GET /metadata/identity/oauth2/token", f.azureIMDS)
	mux.HandleFunc("GET /msi/token", f.appServiceIdentity)
	return mux
}

// form parses a form body into a flat map.
func form(r *http.Request) map[string]string {
	_ = r.ParseForm()
	m := map[string]string{}
	for k, v := range r.Form {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

// ---- AWS ----

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type stsResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
	Result  struct {
		Credentials                 stsCredentials `xml:"Credentials"`
		SubjectFromWebIdentityToken string         `xml:"SubjectFromWebIdentityToken"`
		AssumedRoleUser             struct {
			Arn           string `xml:"Arn"`
			AssumedRoleID string `xml:"AssumedRoleId"`
		} `xml:"AssumedRoleUser"`
		Audience string `xml:"Audience"`
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

func stsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		code, msg, randomHex(8))
}

// awsSTS answers AssumeRoleWithWebIdentity in the awsQuery protocol.
func (f *Fake) awsSTS(w http.ResponseWriter, r *http.Request) {
	in := form(r)
	if in["Action"] != "AssumeRoleWithWebIdentity" || in["Version"] != "2011-06-15" {
		stsError(w, http.StatusBadRequest, "InvalidAction", "Could not find operation "+in["Action"]+" for version "+in["Version"])
		return
	}
	if r.Header.Get("Authorization") != "" {
		// The call is unsigned: credentials are what it asks for.
		stsError(w, http.StatusBadRequest, "InvalidParameterValue", "AssumeRoleWithWebIdentity takes no signature")
		return
	}
	if !equal(in["WebIdentityToken"], f.opts.WebIdentityToken) {
		stsError(w, http.StatusBadRequest, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider")
		return
	}
	if in["RoleArn"] == "" || (f.opts.RoleARN != "" && in["RoleArn"] != f.opts.RoleARN) {
		stsError(w, http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
		return
	}
	if in["RoleSessionName"] == "" {
		stsError(w, http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
		return
	}
	id, k := f.issueAWS("ASIAWEB")
	var out stsResponse
	out.Result.Credentials = stsCredentials{AccessKeyID: id, SecretAccessKey: k.secret, SessionToken: k.session, Expiration: k.expires.UTC().Format(time.RFC3339)}
	out.Result.SubjectFromWebIdentityToken = "system:serviceaccount:llmproxy:llmproxy"
	out.Result.AssumedRoleUser.Arn = in["RoleArn"] + "/" + in["RoleSessionName"]
	out.Result.AssumedRoleUser.AssumedRoleID = "AROA" + randomHex(6) + ":" + in["RoleSessionName"]
	out.Result.Audience = "sts.amazonaws.com"
	out.RequestID = randomHex(8)
	f.accept("sts", r, in)
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(out)
}

// awsJSONCredentials is the body the container endpoint and IMDS return.
func (f *Fake) awsJSONCredentials(w http.ResponseWriter, prefix string) {
	id, k := f.issueAWS(prefix)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": time.Now().UTC().Format(time.RFC3339),
		"AccessKeyId": id, "SecretAccessKey": k.secret, "Token": k.session, "Expiration": k.expires.UTC().Format(time.RFC3339),
	})
}

// containerCredentials is the EKS Pod Identity agent: the pod presents its
// projected token as the Authorization header.
func (f *Fake) containerCredentials(w http.ResponseWriter, r *http.Request) {
	if !equal(r.Header.Get("Authorization"), f.opts.PodIdentityToken) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":"AccessDeniedException","message":"Invalid authorization token"}`))
		return
	}
	f.accept("container", r, nil)
	f.awsJSONCredentials(w, "ASIAPOD")
}

// imdsSession issues an IMDSv2 session token.
func (f *Fake) imdsSession(w http.ResponseWriter, r *http.Request) {
	ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	tok := "imds-" + randomHex(16)
	f.mu.Lock()
	f.imds[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
	f.mu.Unlock()
	w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
	_, _ = w.Write([]byte(tok))
}

// imdsCredentials serves the role name and its credentials, to IMDSv2
// sessions only (IMDSv1 requests get 401, as with
// HttpTokens=required).
func (f *Fake) imdsCredentials(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	exp, ok := f.imds[r.Header.Get("X-aws-ec2-metadata-token")]
	f.mu.Unlock()
	if !ok || time.Now().After(exp) {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	switch role := r.PathValue("role"); role {
	case "":
		_, _ = w.Write([]byte(f.opts.InstanceRole))
	case f.opts.InstanceRole:
		f.accept("imds", r, nil)
		f.awsJSONCredentials(w, "ASIAEC2")
	default:
		http.NotFound(w, r)
	}
}

// ---- Google ----

// gceMetadata is the GCE/GKE metadata server.
func (f *Fake) gceMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Header.Get("Metadata-Flavor") != "Google" || r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Missing required header \"Metadata-Flavor\": \"Google\"", http.StatusForbidden)
		return
	}
	switch strings.TrimSuffix(r.PathValue("path"), "/") {
	case "instance/service-accounts/default/token":
		tok := f.issueToken("ya29.gke-")
		f.accept("gce", r, map[string]string{"scopes": r.URL.Query().Get("scopes")})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": int(f.opts.TTL.Seconds()), "token_type": "Bearer"})
	case "instance/service-accounts/default/email":
		_, _ = w.Write([]byte("llmproxy@" + f.opts.GoogleProject + ".iam.gserviceaccount.com"))
	case "project/project-id":
		_, _ = w.Write([]byte(f.opts.GoogleProject))
	case "universe/universe-domain":
		_, _ = w.Write([]byte("googleapis.com"))
	case "":
		_, _ = w.Write([]byte("instance/\nproject/\n"))
	default:
		http.NotFound(w, r)
	}
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// googleSTS is the RFC 8693 token exchange of workload identity
// federation.
func (f *Fake) googleSTS(w http.ResponseWriter, r *http.Request) {
	in := form(r)
	switch {
	case in["grant_type"] != "urn:ietf:params:oauth:grant-type:token-exchange":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be token-exchange")
	case in["requested_token_type"] != "urn:ietf:params:oauth:token-type:access_token":
		oauthError(w, http.StatusBadRequest, "invalid_request", "requested_token_type must be access_token")
	case in["subject_token_type"] == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token_type is required")
	case f.opts.GoogleAudience != "" && in["audience"] != f.opts.GoogleAudience:
		oauthError(w, http.StatusBadRequest, "invalid_target", "The target service indicated by the \"audience\" parameters is invalid.")
	case !equal(in["subject_token"], f.opts.WebIdentityToken):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "The subject token is invalid.")
	default:
		tok := f.issueToken("ya29.federated-")
		in["subject_token"] = "" // never kept
		f.accept("google-sts", r, in)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": int(f.opts.TTL.Seconds()),
			"token_type": "Bearer", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
	}
}

// ---- Azure ----

// entraDiscovery is the tenant's OpenID configuration MSAL reads before
// its first token request.
func (f *Fake) entraDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	base := f.tls.URL + "/" + tenant
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_endpoint":           base + "/oauth2/v2.0/token",
		"authorization_endpoint":   base + "/oauth2/v2.0/authorize",
		"issuer":                   base + "/v2.0",
		"jwks_uri":                 base + "/discovery/v2.0/keys",
		"response_types_supported": []string{"code", "id_token", "code id_token", "id_token token"},
		"tenant_region_scope":      "NA",
	})
}

// entraToken is the client-credentials grant with a federated client
// assertion (the projected service-account token).
func (f *Fake) entraToken(w http.ResponseWriter, r *http.Request) {
	in := form(r)
	switch {
	case !equal(r.PathValue("tenant"), f.opts.AzureTenant):
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant not found.")
	case in["grant_type"] != "client_credentials":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: grant_type must be client_credentials")
	case !equal(in["client_id"], f.opts.AzureClientID):
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
	case in["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS50027: client_assertion_type is invalid")
	case !equal(in["client_assertion"], f.opts.WebIdentityToken):
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700211: No matching federated identity record found for presented assertion.")
	case !slices.ContainsFunc(strings.Fields(in["scope"]), func(s string) bool { return strings.HasSuffix(s, "/.default") }):
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
	default:
		tok := f.issueToken("eyJ0eXAi.entra-")
		in["client_assertion"] = ""
		f.accept("entra", r, in)
		ttl := int(f.opts.TTL.Seconds())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": tok})
	}
}

// managedIdentityToken writes a managed-identity token response.
func (f *Fake) managedIdentityToken(w http.ResponseWriter, r *http.Request, endpoint string) {
	resource := r.URL.Query().Get("resource")
	if resource == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing")
		return
	}
	tok := f.issueToken("eyJ0eXAi.msi-")
	f.accept(endpoint, r, map[string]string{"resource": resource, "client_id": r.URL.Query().Get("client_id")})
	ttl := int(f.opts.TTL.Seconds())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok, "expires_in": strconv.Itoa(ttl), "expires_on": strconv.FormatInt(time.Now().Add(f.opts.TTL).Unix(), 10),
		"resource": resource, "token_type": "Bearer",
	})
}

// azureIMDS is the VM/VMSS/AKS-node instance metadata identity endpoint.
func (f *Fake) azureIMDS(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata") != "true" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	f.managedIdentityToken(w, r, "msi")
}

// appServiceIdentity is the IDENTITY_ENDPOINT of App Service, Functions and
// Container Apps.
func (f *Fake) appServiceIdentity(w http.ResponseWriter, r *http.Request) {
	if !equal(r.Header.Get("X-IDENTITY-HEADER"), f.opts.IdentityHeader) {
		oauthError(w, http.StatusUnauthorized, "invalid_request", "X-IDENTITY-HEADER is missing or wrong")
		return
	}
	f.managedIdentityToken(w, r, "msi")
}
