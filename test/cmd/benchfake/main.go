// Command benchfake serves one provider fake (anthropic, azure, bedrock,
// oci, vertex or watsonx) with zero delay for the gateway benchmark, scripted so that a
// streamed answer carries -chunks content chunks. It prints the fake's
// URL on the first line of stdout and serves until SIGINT or SIGTERM:
//
//	benchfake -provider anthropic -key sk-bench-upstream -chunks 20
//
// The fakes check their provider's authentication (x-api-key, api-key,
// SigV4, OCI request signatures, IAM token exchange) exactly as in the end-to-end tests, so the benchmark includes
// what the plugins spend on signing and translation.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/plugins/provider-oci/ocifake"
	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
)

// Providers are the fakes benchfake serves.
var Providers = []string{"anthropic", "azure", "bedrock", "oci", "vertex", "watsonx"}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchfake:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("benchfake", flag.ContinueOnError)
	prov := fs.String("provider", "", "fake to serve: "+strings.Join(Providers, ", "))
	key := fs.String("key", "", "API key (anthropic, azure, watsonx; express mode for vertex) or access key id (bedrock) the fake accepts")
	project := fs.String("project", "bench-project", "project id the fake accepts (watsonx)")
	secret := fs.String("secret", "", "secret access key (bedrock)")
	region := fs.String("region", "us-east-1", "region of the SigV4 credential scope (bedrock)")
	chunks := fs.Int("chunks", 20, "content chunks of a streamed answer")
	creds := fs.String("credentials", "", "write the credentials the fake trusts, as JSON, to this file before serving (oci: tenancy_ocid, user_ocid, fingerprint, private_key, compartment_id)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" && *prov != "oci" {
		return errors.New("-key is required")
	}
	if *chunks < 1 {
		return errors.New("-chunks must be at least 1")
	}
	text, size := answer(*chunks)
	var url string
	var stop func()
	switch *prov {
	case "anthropic":
		f := anthropicfake.New(anthropicfake.Options{APIKey: *key})
		f.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(text)}, ChunkSize: size})
		if err := f.Start(); err != nil {
			return err
		}
		url, stop = f.URL(), func() { _ = f.Close() }
	case "azure":
		f := azurefake.New(azurefake.Options{APIKey: *key})
		f.SetScenario(azurefake.Scenario{Text: text})
		f.Start()
		url, stop = f.URL(), f.Close
	case "bedrock":
		if *secret == "" {
			return errors.New("-secret is required for bedrock")
		}
		f := bedrockfake.New(bedrockfake.Options{AccessKeyID: *key, SecretAccessKey: *secret, Region: *region})
		r := bedrockfake.DefaultReply()
		r.Blocks = []bedrockfake.Block{{Text: text}}
		r.ChunkSize = size
		f.SetReply(r)
		if err := f.Start(); err != nil {
			return err
		}
		url, stop = f.URL(), f.Close
	case "oci":
		if *creds == "" {
			return errors.New("-credentials is required for oci")
		}
		k, err := ocifake.GenerateKey()
		if err != nil {
			return err
		}
		f := ocifake.New(ocifake.Options{Key: k})
		f.SetScenario(ocifake.Scenario{Text: text, ChunkSize: size})
		c := f.Credentials()
		c["compartment_id"] = f.Compartment()
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*creds, b, 0o600); err != nil {
			return fmt.Errorf("write credentials: %w", err)
		}
		if err := f.Start(); err != nil {
			return err
		}
		url, stop = f.URL(), func() { _ = f.Close() }
	case "vertex":
		f := vertexfake.New(vertexfake.Options{APIKey: *key})
		f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{{Text: text}}, ChunkSize: size})
		if err := f.Start(); err != nil {
			return err
		}
		url, stop = f.URL(), func() { _ = f.Close() }
	case "watsonx":
		f := watsonxfake.New(watsonxfake.Options{APIKey: *key, ProjectID: *project})
		f.SetScenario(watsonxfake.Scenario{Text: text, ChunkSize: size})
		if err := f.Start(); err != nil {
			return err
		}
		url, stop = f.URL(), func() { _ = f.Close() }
	default:
		return fmt.Errorf("-provider %q: want one of %s", *prov, strings.Join(Providers, ", "))
	}
	defer stop()
	fmt.Println(url)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	return nil
}

// answer is the scripted reply: n words of the same length, so that both
// the fakes that split by bytes (size bytes a delta) and those that split
// by words stream exactly n content chunks.
func answer(n int) (text string, size int) {
	words := make([]string, n)
	for i := range words {
		words[i] = fmt.Sprintf("chunk%03d", i+1)
	}
	return strings.Join(words, " "), len("chunk000 ")
}
