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
			case p == "store" || p == "pubsub" || p == "ui":
				if !isStd(imp) && (p != "ui" || own(imp)) {
					bad(p + " imports only the standard library")
				}
			case p == "httpapi":
				if !isStd(imp) && ri != "store" {
					bad("httpapi imports only the standard library and store")
				}
			case backends[p] != "":
				if own(imp) && ri != backends[p] {
					bad("a backend imports its parent package and its driver only")
				}
			case p == "auth" || p == "chat" || p == "gateway":
				switch {
				case strings.Contains(imp, "spf13/viper"):
					bad("only main and app touch viper")
				case own(imp) && ri != "store" && ri != "pubsub" && ri != "httpapi" && ri != "auth":
					bad("auth, chat and gateway depend only on the store/pubsub interfaces, httpapi and the auth Verifier")
				}
			}
		}
	}
}
