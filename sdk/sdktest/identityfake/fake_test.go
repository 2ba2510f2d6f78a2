package identityfake

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestEndpointsCheckCredentials sends each endpoint a request with the
// credential it checks, and the same request without or with a wrong one.
func TestEndpointsCheckCredentials(t *testing.T) {
	f := New(Options{WebIdentityToken: "sa-jwt", RoleARN: "arn:aws:iam::1:role/r", PodIdentityToken: "pod-jwt",
		AzureTenant: "tenant", AzureClientID: "app", IdentityHeader: "hdr", GoogleAudience: "//iam/pool"})
	t.Cleanup(f.Close)
	imdsToken := func() string {
		req, _ := http.NewRequest(http.MethodPut, f.URL()+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}()
	sts := func(token string) url.Values {
		return url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {"arn:aws:iam::1:role/r"},
			"RoleSessionName": {"s"}, "WebIdentityToken": {token}}
	}
	google := func(subject string) url.Values {
		return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "audience": {"//iam/pool"},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			"subject_token": {subject}}
	}
	entra := func(assertion string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "scope": {"https://x/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	}
	tests := []struct {
		name, method, url string
		header            map[string]string
		form              url.Values
		client            *http.Client
		want              int
		wantBody          string
	}{
		{"sts", "POST", f.URL() + "/", nil, sts("sa-jwt"), nil, 200, "<AccessKeyId>ASIAWEB"},
		{"sts wrong token", "POST", f.URL() + "/", nil, sts("other"), nil, 400, "InvalidIdentityToken"},
		{"container", "GET", f.URL() + "/v1/credentials", map[string]string{"Authorization": "pod-jwt"}, nil, nil, 200, `"AccessKeyId":"ASIAPOD`},
		{"container without token", "GET", f.URL() + "/v1/credentials", nil, nil, nil, 401, ""},
		{"imdsv2", "GET", f.URL() + "/latest/meta-data/iam/security-credentials/llmproxy-node", map[string]string{"X-aws-ec2-metadata-token": imdsToken}, nil, nil, 200, `"Code":"Success"`},
		{"imdsv1 refused", "GET", f.URL() + "/latest/meta-data/iam/security-credentials/llmproxy-node", nil, nil, nil, 401, ""},
		{"gce", "GET", f.URL() + "/computeMetadata/v1/instance/service-accounts/default/token", map[string]string{"Metadata-Flavor": "Google"}, nil, nil, 200, `"access_token":"ya29.gke-`},
		{"gce without header", "GET", f.URL() + "/computeMetadata/v1/instance/service-accounts/default/token", nil, nil, nil, 403, ""},
		{"google sts", "POST", f.URL() + "/v1/token", nil, google("sa-jwt"), nil, 200, `"access_token":"ya29.federated-`},
		{"google sts wrong subject", "POST", f.URL() + "/v1/token", nil, google("other"), nil, 400, "invalid_grant"},
		{"entra", "POST", f.TLSURL() + "/tenant/oauth2/v2.0/token", nil, entra("sa-jwt"), f.TLSClient(), 200, `"access_token":"eyJ0eXAi.entra-`},
		{"entra wrong assertion", "POST", f.TLSURL() + "/tenant/oauth2/v2.0/token", nil, entra("other"), f.TLSClient(), 401, "AADSTS700211"},
		{"entra wrong tenant", "POST", f.TLSURL() + "/other/oauth2/v2.0/token", nil, entra("sa-jwt"), f.TLSClient(), 400, "AADSTS90002"},
		{"imds identity", "GET", f.URL() + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://r", map[string]string{"Metadata": "true"}, nil, nil, 200, `"access_token":"eyJ0eXAi.msi-`},
		{"imds identity without header", "GET", f.URL() + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://r", nil, nil, nil, 400, ""},
		{"app service", "GET", f.URL() + "/msi/token?api-version=2019-08-01&resource=https://r", map[string]string{"X-IDENTITY-HEADER": "hdr"}, nil, nil, 200, `"resource":"https://r"`},
		{"app service wrong header", "GET", f.URL() + "/msi/token?api-version=2019-08-01&resource=https://r", map[string]string{"X-IDENTITY-HEADER": "x"}, nil, nil, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.form != nil {
				body = strings.NewReader(tt.form.Encode())
			}
			req, _ := http.NewRequest(tt.method, tt.url, body)
			if tt.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			c := tt.client
			if c == nil {
				c = http.DefaultClient
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.wantBody) {
				t.Fatalf("status %d body %s; want %d containing %q", resp.StatusCode, b, tt.want, tt.wantBody)
			}
		})
	}
	if f.Calls("sts") != 1 || f.Calls("entra") != 1 || f.Calls("msi") != 2 {
		t.Errorf("calls: sts %d entra %d msi %d", f.Calls("sts"), f.Calls("entra"), f.Calls("msi"))
	}
}

// TestIssuedKeysAndTokens checks that only what the fake issued, unexpired,
// is reported as issued.
func TestIssuedKeysAndTokens(t *testing.T) {
	f := New(Options{})
	t.Cleanup(f.Close)
	id, k := f.issueAWS("ASIATEST")
	if s, tok, ok := f.AWSKeys(id); !ok || s != k.secret || tok != k.session {
		t.Fatal("an issued key pair is not reported")
	}
	if _, _, ok := f.AWSKeys("ASIAOTHER"); ok {
		t.Fatal("an unknown key id is reported as issued")
	}
	tok := f.issueToken("t-")
	if !f.Issued(tok) || f.Issued("t-other") {
		t.Fatal("Issued does not tell issued tokens from others")
	}
}
