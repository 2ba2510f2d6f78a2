package deployments

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd, args string
	line      int
}

// parseDockerfile reads the instructions of a Dockerfile: comments and
// blank lines dropped, backslash continuations joined.
func parseDockerfile(text string) []instruction {
	var (
		out  []instruction
		cur  strings.Builder
		from int
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			from = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: from})
		cur.Reset()
	}
	return out
}

// dockerRules are the rules the image must keep; each gets the
// instructions and reports what breaks it.
var dockerRules = []struct {
	name  string
	check func(ins []instruction) string
}{
	{"multi-stage build with named stages", func(ins []instruction) string {
		froms := 0
		for _, i := range ins {
			if i.cmd == "FROM" {
				froms++
				if !regexp.MustCompile(`(?i)\sAS\s+\w+`).MatchString(i.args) {
					return "FROM without AS name: " + i.args
				}
			}
		}
		if froms < 2 {
			return "fewer than two stages"
		}
		return ""
	}},
	{"base images pinned, never latest", func(ins []instruction) string {
		for _, i := range ins {
			if i.cmd != "FROM" {
				continue
			}
			img := strings.Fields(i.args)[0]
			if !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
				return "unpinned base image " + img
			}
		}
		return ""
	}},
	{"final stage is distroless or scratch", func(ins []instruction) string {
		last := ""
		for _, i := range ins {
			if i.cmd == "FROM" {
				last = strings.Fields(i.args)[0]
			}
		}
		if last != "scratch" && !strings.HasPrefix(last, "gcr.io/distroless/static") {
			return "final base " + last
		}
		return ""
	}},
	{"static binaries (CGO_ENABLED=0)", func(ins []instruction) string {
		for _, i := range ins {
			if i.cmd == "ENV" && strings.Contains(i.args, "CGO_ENABLED=0") {
				return ""
			}
		}
		return "CGO_ENABLED=0 is not set"
	}},
	{"host and plugins copied from the build stage", func(ins []instruction) string {
		var host, plugins bool
		for _, i := range ins {
			if i.cmd == "COPY" && strings.Contains(i.args, "--from=build") {
				host = host || strings.Contains(i.args, "/opt/llmproxy/llmproxy")
				plugins = plugins || strings.Contains(i.args, "/opt/llmproxy/plugins/")
			}
		}
		if !host || !plugins {
			return "the final stage lacks the host or the plugins"
		}
		return ""
	}},
	{"runs as a non-root user", func(ins []instruction) string {
		user := ""
		for _, i := range ins {
			if i.cmd == "USER" {
				user = i.args
			}
		}
		if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") {
			return "USER is " + user
		}
		return ""
	}},
	{"exec-form entrypoint", func(ins []instruction) string {
		for _, i := range ins {
			if i.cmd == "ENTRYPOINT" {
				if !strings.HasPrefix(i.args, "[") {
					return "shell-form ENTRYPOINT (signals would not reach the host)"
				}
				return ""
			}
		}
		return "no ENTRYPOINT"
	}},
	{"no ADD, no secrets in ENV or ARG", func(ins []instruction) string {
		for _, i := range ins {
			if i.cmd == "ADD" {
				return "ADD at line " + i.args
			}
			if (i.cmd == "ENV" || i.cmd == "ARG") && regexp.MustCompile(`(?i)(key|secret|token|password)\w*=`).MatchString(i.args) {
				return "secret-looking " + i.cmd + " " + i.args
			}
		}
		return ""
	}},
	{"known instructions only", func(ins []instruction) string {
		known := "FROM RUN COPY ENV ARG USER EXPOSE ENTRYPOINT CMD WORKDIR LABEL HEALTHCHECK STOPSIGNAL VOLUME SHELL ONBUILD"
		for _, i := range ins {
			if !strings.Contains(" "+known+" ", " "+i.cmd+" ") {
				return "unknown instruction " + i.cmd
			}
		}
		return ""
	}},
}

// TestDockerfile lints ../Dockerfile against the image rules (hadolint
// too when it is installed).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ins := parseDockerfile(string(b))
	for _, r := range dockerRules {
		t.Run(r.name, func(t *testing.T) {
			if msg := r.check(ins); msg != "" {
				t.Error(msg)
			}
		})
	}
	if path, err := exec.LookPath("hadolint"); err == nil {
		if out, err := exec.Command(path, "../Dockerfile").CombinedOutput(); err != nil {
			t.Errorf("hadolint: %v\n%s", err, out)
		}
	}
}

// TestDockerRulesCatch runs the rules on Dockerfiles that break them.
func TestDockerRulesCatch(t *testing.T) {
	good, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ rule, from, to string }{
		{"runs as a non-root user", "USER 65532:65532", "USER root"},
		{"final stage is distroless or scratch", "FROM gcr.io/distroless/static-debian12:nonroot AS run", "FROM debian:12 AS run"},
		{"base images pinned, never latest", "FROM gcr.io/distroless/static-debian12:nonroot AS run", "FROM gcr.io/distroless/static-debian12 AS run"},
		{"exec-form entrypoint", `ENTRYPOINT ["/opt/llmproxy/llmproxy"]`, "ENTRYPOINT /opt/llmproxy/llmproxy"},
		{"static binaries (CGO_ENABLED=0)", "CGO_ENABLED=0", "CGO_ENABLED=1"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			if !strings.Contains(string(good), tt.from) {
				t.Fatalf("the Dockerfile has no %q", tt.from)
			}
			ins := parseDockerfile(strings.Replace(string(good), tt.from, tt.to, 1))
			for _, r := range dockerRules {
				if r.name == tt.rule && r.check(ins) == "" {
					t.Errorf("rule %q accepted %q", tt.rule, tt.to)
				}
			}
		})
	}
}
