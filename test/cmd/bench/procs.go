package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/profile"
	"github.com/llmproxy/llmproxy/test/harness"
)

const (
	// upstreamKey is the key the fakes accept and llmproxy's plugins send.
	upstreamKey = "sk-bench-upstream"
	// gatewayKey is the key llmproxy accepts from the load generator.
	gatewayKey = "sk-bench-gateway"
	// chatModel is served by the fast fake (one precomputed answer).
	chatModel = "gpt-4o-mini"
	// streamModel is served by the regular fake, which streams one chunk
	// per word of its answer.
	streamModel = "gpt-4o"
	// servedChatModel and servedStreamModel route to openai instances
	// with forward = false, on the same fakes: the plugin serves every
	// call, so target "served" measures the host → plugin hop.
	servedChatModel   = "served-" + chatModel
	servedStreamModel = "served-" + streamModel
	// awsSecret is the secret access key of the Bedrock instance; the
	// access key id is upstreamKey.
	awsSecret = "bench-upstream-secret-access-key"
	// contentChunks is how many content chunks the provider fakes stream.
	contentChunks = 20
	// startTimeout bounds how long a process may take to come up.
	startTimeout = 30 * time.Second
	// stopTimeout bounds how long a process may take to exit after SIGTERM.
	stopTimeout = 10 * time.Second
)

// start runs path with args, its output going to a log file in work.
// With firstLine it waits for the first line of stdout (the URL that
// openaifake and bareproxy print) and returns it.
func start(ctx context.Context, work, name, path string, env []string, firstLine bool, args ...string) (*harness.Process, string, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	return harness.Launch(ctx, name, filepath.Join(work, name+".log"), cmd, firstLine, startTimeout)
}

// rig is the set of processes under test.
type rig struct {
	procs []*harness.Process
	// host is the llmproxy process.
	host *harness.Process
	// pluginPIDs are the PIDs of llmproxy's plugin processes: the fast
	// and the stream instance first, then one per provider, then the two
	// served instances.
	pluginPIDs []int
	// bareStream is the bare proxy in front of the streaming fake.
	bareStream *harness.Process
	// ociCreds are the credentials the OCI fake trusts.
	ociCreds map[string]string
	// targets are direct, bare, chained (gateway mode only), llmproxy,
	// served and one llmproxy target per provider, in that order.
	targets []target
}

// benchProviders are the provider plugins measured beside openai, each
// against its fake (test/cmd/benchfake): the instance type, the model
// the benchmark asks for, and the model the route sends upstream.
var benchProviders = map[string]struct{ model, upstream string }{
	"anthropic": {"claude-bench", "claude-sonnet-4-5-20250929"},
	"azure":     {"azure-bench", "gpt-4o"},
	"bedrock":   {"bedrock-bench", "anthropic.claude-3-sonnet-20240229-v1:0"},
	"oci":       {"oci-bench", "meta.llama-3.3-70b-instruct"},
	"vertex":    {"vertex-bench", "gemini-2.5-flash"},
	"watsonx":   {"watsonx-bench", "ibm/granite-3-3-8b-instruct"},
}

// watsonxProject is the project the watsonx fake accepts.
const watsonxProject = "bench-project"

// stop ends every process, the gateway first.
func (r *rig) stop() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].Stop(stopTimeout)
	}
}

// startRig builds what is missing and starts the fakes, the bare proxies
// and llmproxy. The rig it returns must be stopped even on error.
func startRig(ctx context.Context, o options, work string) (*rig, error) {
	// The config names the plugins dir, and llmproxy resolves relative
	// paths against the config's directory: make it absolute.
	binDir, err := filepath.Abs(o.binDir)
	if err != nil {
		return nil, fmt.Errorf("bin directory: %w", err)
	}
	o.binDir = binDir
	host := filepath.Join(binDir, "llmproxy")
	if _, err := os.Stat(host); err != nil {
		return nil, fmt.Errorf("llmproxy binary not found in %s: run `make build` first (or set -bin / LLMPROXY_BIN): %w", binDir, err)
	}
	fake, bare, provFake, err := buildTools(ctx, o, work)
	if err != nil {
		return nil, err
	}
	r := &rig{}
	add := func(name, path string, env []string, args ...string) (string, error) {
		p, url, err := start(ctx, work, name, path, env, true, args...)
		if err != nil {
			return "", err
		}
		r.procs = append(r.procs, p)
		return url, nil
	}
	fastURL, err := add("fake-fast", fake, nil, "-addr", "127.0.0.1:0", "-key", upstreamKey, "-fast")
	if err != nil {
		return r, err
	}
	streamArgs := []string{"-addr", "127.0.0.1:0", "-key", upstreamKey}
	if o.chunkDelay > 0 {
		streamArgs = append(streamArgs, "-chunk-delay", o.chunkDelay.String())
	}
	streamURL, err := add("fake-stream", fake, nil, streamArgs...)
	if err != nil {
		return r, err
	}
	bareFastURL, err := add("bare-fast", bare, nil, "-addr", "127.0.0.1:0", "-upstream", fastURL)
	if err != nil {
		return r, err
	}
	bareStreamURL, err := add("bare-stream", bare, nil, "-addr", "127.0.0.1:0", "-upstream", streamURL)
	if err != nil {
		return r, err
	}
	r.bareStream = r.procs[len(r.procs)-1]
	// A second bare proxy in front of the first is a process on the path
	// that does no work: what it adds is the floor of any plugin that
	// stays on the data path.
	var chainFastURL, chainStreamURL string
	if o.mode == "gateway" {
		if chainFastURL, err = add("chain-fast", bare, nil, "-addr", "127.0.0.1:0", "-upstream", bareFastURL); err != nil {
			return r, err
		}
		if chainStreamURL, err = add("chain-stream", bare, nil, "-addr", "127.0.0.1:0", "-upstream", bareStreamURL); err != nil {
			return r, err
		}
	}
	provURLs := map[string]string{}
	var ociCreds map[string]string
	for _, name := range o.providers {
		args := []string{"-provider", name, "-key", upstreamKey, "-chunks", fmt.Sprint(contentChunks)}
		credsFile := filepath.Join(work, "oci-credentials.json")
		switch name {
		case "bedrock":
			args = append(args, "-secret", awsSecret)
		case "watsonx":
			args = append(args, "-project", watsonxProject)
		case "oci":
			args = append(args, "-credentials", credsFile)
		}
		if provURLs[name], err = add("fake-"+name, provFake, nil, args...); err != nil {
			return r, err
		}
		if name == "oci" {
			b, err := os.ReadFile(credsFile)
			if err != nil {
				return r, fmt.Errorf("oci fake credentials: %w", err)
			}
			if err := json.Unmarshal(b, &ociCreds); err != nil {
				return r, fmt.Errorf("oci fake credentials: %w", err)
			}
		}
	}
	r.ociCreds = ociCreds
	hostURL, hostProc, pids, err := r.startHost(ctx, o, work, "llmproxy", binDir, fastURL, streamURL, provURLs)
	if err != nil {
		return r, err
	}
	r.host, r.pluginPIDs = hostProc, pids
	gw := newTarget("llmproxy", hostURL, hostURL, gatewayKey, chatModel, streamModel)
	gw.proxied = true
	served := newTarget("served", hostURL, hostURL, gatewayKey, servedChatModel, servedStreamModel)
	served.proxied = true
	r.targets = []target{
		newTarget("direct", fastURL, streamURL, upstreamKey, chatModel, streamModel),
		newTarget("bare", bareFastURL, bareStreamURL, upstreamKey, chatModel, streamModel),
	}
	if chainFastURL != "" {
		r.targets = append(r.targets, newTarget("chained", chainFastURL, chainStreamURL, upstreamKey, chatModel, streamModel))
	}
	r.targets = append(r.targets, gw, served)
	if o.baselineBin != "" {
		// The same routes through another build, for a before and after
		// in one run: openai as "baseline", each provider as
		// "base/<provider>".
		base, err := filepath.Abs(o.baselineBin)
		if err != nil {
			return r, fmt.Errorf("baseline bin directory: %w", err)
		}
		if _, err := os.Stat(filepath.Join(base, "llmproxy")); err != nil {
			return r, fmt.Errorf("baseline llmproxy: %w", err)
		}
		baseURL, _, _, err := r.startHost(ctx, o, work, "baseline", base, fastURL, streamURL, provURLs)
		if err != nil {
			return r, err
		}
		t := newTarget("baseline", baseURL, baseURL, gatewayKey, chatModel, streamModel)
		t.proxied = true
		r.targets = append(r.targets, t)
		for _, name := range o.providers {
			m := benchProviders[name].model
			t := newTarget("base/"+name, baseURL, baseURL, gatewayKey, m, m)
			t.proxied = true
			r.targets = append(r.targets, t)
		}
	}
	for _, name := range o.providers {
		m := benchProviders[name].model
		t := newTarget(name, hostURL, hostURL, gatewayKey, m, m)
		t.proxied = true
		r.targets = append(r.targets, t)
	}
	return r, nil
}

// hostConfig is the HCL llmproxy runs with: one openai instance per fake,
// a route to each, and production-like logging.
//
// With served, the config also has the openai instances that the "served"
// target reaches (forward = false).
func hostConfig(listen, pluginsDir, fastURL, streamURL string, served bool, provURLs, ociCreds, env map[string]string) string {
	var envHCL string
	if len(env) > 0 {
		var b strings.Builder
		b.WriteString("  env = {\n")
		for _, k := range sortedKeys(env) {
			fmt.Fprintf(&b, "    %s = %q\n", k, env[k])
		}
		b.WriteString("  }\n")
		envHCL = b.String()
	}
	provider := func(name, url string, forward bool) string {
		var off string
		if !forward {
			off = "    forward  = false\n"
		}
		return fmt.Sprintf(`provider %q {
  type = "openai"
%s  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = %q
%s  }
}
`, name, envHCL, upstreamKey, url+"/v1", off)
	}
	var provs strings.Builder
	if served {
		fmt.Fprintf(&provs, "%s%sroute %q {\n  target \"fast_served\" { model = %q }\n}\nroute %q {\n  target \"stream_served\" { model = %q }\n}\n",
			provider("fast_served", fastURL, false), provider("stream_served", streamURL, false),
			servedChatModel, chatModel, servedStreamModel, streamModel)
	}
	for _, name := range sortedKeys(provURLs) {
		creds := fmt.Sprintf("  credential \"api_key\" {\n    from \"value\" { value = %q }\n  }\n", upstreamKey)
		conf := fmt.Sprintf("    base_url = %q\n", provURLs[name])
		switch name {
		case "azure":
			conf = fmt.Sprintf("    endpoint = %q\n", provURLs[name])
		case "bedrock":
			creds = fmt.Sprintf("  credential \"access_key_id\" {\n    from \"value\" { value = %q }\n  }\n"+
				"  credential \"secret_access_key\" {\n    from \"value\" { value = %q }\n  }\n", upstreamKey, awsSecret)
			conf = fmt.Sprintf("    region   = \"us-east-1\"\n    endpoint = %q\n", provURLs[name])
		case "oci":
			creds = ""
			for _, k := range []string{"tenancy_ocid", "user_ocid", "fingerprint", "private_key"} {
				creds += fmt.Sprintf("  credential %q {\n    from \"value\" { value = %q }\n  }\n", k, ociCreds[k])
			}
			conf = fmt.Sprintf("    region         = \"us-chicago-1\"\n    endpoint       = %q\n    compartment_id = %q\n", provURLs[name], ociCreds["compartment_id"])
		case "vertex":
			// Express mode: the API key, no token exchange.
			conf = fmt.Sprintf("    endpoint = %q\n", provURLs[name])
		case "watsonx":
			conf = fmt.Sprintf("    url        = %q\n    iam_url    = %q\n    project_id = %q\n", provURLs[name], provURLs[name], watsonxProject)
		}
		p := benchProviders[name]
		fmt.Fprintf(&provs, "provider %q {\n  type = %q\n%s%s  config {\n%s  }\n}\nroute %q {\n  target %q { model = %q }\n}\n",
			name, name, envHCL, creds, conf, p.model, name, p.upstream)
	}
	return fmt.Sprintf(`server {
  listen         = %q
  plugins_dir    = %q
  max_body_bytes = 1048576
}
logging {
  level      = "info"
  access_log = false
}
api_key "bench" {
  key         = %q
  models      = ["*"]
  passthrough = ["*"]
  instances   = ["*"]
  storage_ops = ["*"]
  admin       = true
}
%s%sroute %q {
  target "fast" {}
}
route %q {
  target "stream" {}
}
%s`, listen, pluginsDir, gatewayKey, provider("fast", fastURL, true), provider("stream", streamURL, true), chatModel, streamModel, provs.String())
}

// startHost writes the config, starts the llmproxy of binDir as name and
// waits until every instance is ready. It returns the host's URL, its
// process and its plugins' PIDs in the order of the instances: fast,
// stream, then the providers.
func (r *rig) startHost(ctx context.Context, o options, work, name, binDir, fastURL, streamURL string, provURLs map[string]string) (string, *harness.Process, []int, error) {
	listen, err := harness.FreeAddress()
	if err != nil {
		return "", nil, nil, err
	}
	env := map[string]string{}
	if o.gogc != "" {
		env["GOGC"] = o.gogc
	}
	if o.gomaxprocs != "" {
		env["GOMAXPROCS"] = o.gomaxprocs
	}
	if o.pprofDir != "" {
		dir, err := filepath.Abs(o.pprofDir)
		if err != nil {
			return "", nil, nil, fmt.Errorf("profile directory: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, nil, fmt.Errorf("profile directory: %w", err)
		}
		env[profile.EnvDir] = dir
	}
	cfg := hostConfig(listen, filepath.Join(binDir, "plugins"), fastURL, streamURL, name == "llmproxy", provURLs, r.ociCreds, env)
	path := filepath.Join(work, name+".hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", nil, nil, fmt.Errorf("write %s config: %w", name, err)
	}
	var hostEnv []string
	for _, k := range sortedKeys(env) {
		hostEnv = append(hostEnv, k+"="+env[k])
	}
	p, _, err := start(ctx, work, name, filepath.Join(binDir, "llmproxy"), hostEnv, false, "-config", path)
	if err != nil {
		return "", nil, nil, err
	}
	r.procs = append(r.procs, p)
	url := "http://" + listen
	instances := append([]string{"fast", "stream"}, sortedKeys(provURLs)...)
	if name == "llmproxy" {
		instances = append(instances, "fast_served", "stream_served")
	}
	st, err := harness.WaitInstances(ctx, url, instances, p, startTimeout, gatewayKey)
	if err != nil {
		return "", nil, nil, err
	}
	var pids []int
	for _, in := range instances {
		pids = append(pids, st[in].PID)
	}
	return url, p, pids, nil
}

// buildTools returns the openaifake, bareproxy and benchfake binaries,
// building into work those not given on the command line (benchfake only
// when providers are measured).
func buildTools(ctx context.Context, o options, work string) (fake, bare, provFake string, err error) {
	fake, bare, provFake = o.fakeBin, o.bareBin, o.provFakeBin
	if fake != "" && bare != "" && (provFake != "" || len(o.providers) == 0) {
		return fake, bare, provFake, nil
	}
	testDir, err := testModuleDir(ctx)
	if err != nil {
		return "", "", "", err
	}
	if fake == "" {
		fake = filepath.Join(work, "openaifake")
		dir := filepath.Join(testDir, "..", "plugins", "provider-openai")
		if err := goBuild(ctx, dir, fake, "./cmd/openaifake"); err != nil {
			return "", "", "", err
		}
	}
	if bare == "" {
		bare = filepath.Join(work, "bareproxy")
		if err := goBuild(ctx, testDir, bare, "./cmd/bareproxy"); err != nil {
			return "", "", "", err
		}
	}
	if provFake == "" && len(o.providers) > 0 {
		provFake = filepath.Join(work, "benchfake")
		if err := goBuild(ctx, testDir, provFake, "./cmd/benchfake"); err != nil {
			return "", "", "", err
		}
	}
	return fake, bare, provFake, nil
}

// testModuleDir finds the test module from the working directory.
func testModuleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	b, err := os.ReadFile(gomod)
	if err != nil || !strings.Contains(string(b), "module github.com/llmproxy/llmproxy/test\n") {
		return "", fmt.Errorf("run bench from the test module (cd test && go run ./cmd/bench), or pass -fake and -bareproxy; go.mod here is %q", gomod)
	}
	return filepath.Dir(gomod), nil
}

// goBuild builds pkg of the module in dir into out, as its own module.
func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}
