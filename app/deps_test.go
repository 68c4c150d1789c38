package app

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules enforces architecture.md's dependency rules on the
// non-test imports of every package, as `go list` reports them.
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}`, "github.com/chatd/chatd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/chatd/chatd"
	own := func(p string) bool { return p == mod || strings.HasPrefix(p, mod+"/") }
	rel := func(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, mod), "/") }
	isStd := func(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") }
	backends := map[string]string{
		"store/sqlitestore":  "store",
		"store/mongostore":   "store",
		"pubsub/mempubsub":   "pubsub",
		"pubsub/redispubsub": "pubsub",
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, "|")
		p := rel(pkg)
		for _, imp := range strings.Fields(imps) {
			ri := rel(imp)
			bad := func(why string) { t.Errorf("%s imports %s: %s", p, imp, why) }
			if own(imp) && strings.HasSuffix(ri, "test") && !strings.HasPrefix(p, "internal/testserver") && !strings.HasSuffix(p, "test") {
				bad("test-only packages are imported from tests only")
			}
			switch {
			case p == "textpolicy":
				if own(imp) {
					bad("textpolicy is pure: it imports nothing of ours")
				}
			case p == "store" || p == "pubsub" || p == "ui":
				if !isStd(imp) && (p != "ui" || own(imp)) {
					bad(p + " imports only the standard library")
				}
			case p == "httpapi":
				if !isStd(imp) {
					bad("httpapi imports only the standard library (it maps the store's errors by their Kind method)")
				}
			case backends[p] != "":
				if own(imp) && ri != backends[p] {
					bad("a backend imports its parent package and its driver only")
				}
			case p == "internal/keyfile":
				if !isStd(imp) {
					bad("internal/keyfile imports only the standard library")
				}
			case p == "auth/token":
				if own(imp) && ri != "httpapi" && ri != "internal/keyfile" {
					bad("the token package imports nothing of ours but httpapi and internal/keyfile")
				}
				if strings.Contains(imp, "spf13/viper") {
					bad("only main and app touch viper")
				}
			case p == "push":
				if own(imp) && ri != "store" && ri != "pubsub" && ri != "internal/keyfile" {
					bad("push depends only on the store and pubsub interfaces and internal/keyfile")
				}
				if strings.Contains(imp, "spf13/viper") {
					bad("only main and app touch viper")
				}
			case p == "auth" || p == "chat" || p == "gateway":
				switch {
				case strings.Contains(imp, "spf13/viper"):
					bad("only main and app touch viper")
				case p == "auth" && own(imp) && ri != "store" && ri != "pubsub" && ri != "httpapi" && ri != "auth/token" && ri != "textpolicy":
					bad("auth depends only on the store/pubsub interfaces, httpapi, textpolicy and auth/token")
				case p == "chat" && own(imp) && ri != "store" && ri != "pubsub" && ri != "httpapi" && ri != "auth/token" && ri != "textpolicy":
					bad("chat depends only on the store/pubsub interfaces, httpapi, textpolicy and the pure auth/token")
				case p == "gateway" && own(imp) && ri != "httpapi" && ri != "auth/token":
					bad("gateway depends only on httpapi and the pure auth/token")
				}
			}
		}
	}
}

// TestTransitiveDependencies checks what the verifying roles pull in at all,
// not only what they import directly: gateway and chat must not carry the
// auth role's password hashing or a backend, and gateway not the broker nor
// the store, so a gateway's dependency graph stays auth/token and httpapi.
func TestTransitiveDependencies(t *testing.T) {
	const mod = "github.com/chatd/chatd"
	const argon2 = "golang.org/x/crypto/argon2"
	// chat and gateway see the OpenTelemetry API only; app owns the SDK.
	const otelSDK, otelExporters = "go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters"
	backends := []string{mod + "/store/sqlitestore", mod + "/store/mongostore", mod + "/pubsub/mempubsub", mod + "/pubsub/redispubsub"}
	rules := map[string][]string{ // package: deps it must not have (exact or as a prefix of a path)
		"gateway":    append([]string{mod + "/store", mod + "/pubsub", mod + "/auth", mod + "/chat", argon2, otelSDK, otelExporters, mod + "/internal/tracing"}, backends...),
		"chat":       append([]string{mod + "/auth", mod + "/gateway", argon2, otelSDK, otelExporters, mod + "/internal/tracing"}, backends...),
		"push":       append([]string{mod + "/auth", mod + "/chat", mod + "/gateway", argon2}, backends...),
		"auth/token": append([]string{mod + "/store", mod + "/pubsub", mod + "/chat", mod + "/gateway", argon2}, backends...),
	}
	// allowed are exceptions to a forbidden prefix.
	allowed := map[string]bool{mod + "/auth/token": true}
	args := []string{"list", "-f", `{{.ImportPath}}|{{join .Deps " "}}`}
	for p := range rules {
		args = append(args, mod+"/"+p)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string]map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 2 {
			t.Fatalf("go list: unexpected line %q", line)
		}
		p := strings.TrimPrefix(f[0], mod+"/")
		deps[p] = map[string]bool{}
		for _, d := range strings.Fields(f[1]) {
			deps[p][d] = true
		}
	}
	for p, forbidden := range rules {
		if deps[p] == nil {
			t.Errorf("go list did not report %s", p)
			continue
		}
		for dep := range deps[p] {
			if allowed[dep] {
				continue
			}
			for _, no := range forbidden {
				if dep == no || strings.HasPrefix(dep, no+"/") {
					t.Errorf("%s depends on %s (go list -deps ./%s)", p, dep, p)
				}
			}
		}
	}
}
