package charttest

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatd/chatd/app"
)

const (
	moduleRoot    = "../.."
	dashboardFile = "../grafana/chatd.json"
)

// bootAll starts chatd --role=all in this process on free ports and
// returns its base URL and its ops listener's.
func bootAll(t *testing.T) (base, ops string) {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.OpsAddr = "127.0.0.1:0" // tests run side by side; the default port would collide
	cfg.DataDir = t.TempDir()
	cfg.Log.Level = "error"
	a, err := app.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + a.Addr(), "http://" + a.OpsAddr()
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

// The probes' paths are chatd's: each answers 200 on a running chatd.
func TestChartProbesAreChatdEndpoints(t *testing.T) {
	base, ops := bootAll(t)
	paths := map[string]bool{}
	for _, c := range valuesCases {
		r := render(t, c.files...)
		for _, d := range r.deployments {
			ctr := d.Spec.Template.Spec.Containers[0]
			paths[ctr.ReadinessProbe.HTTPGet.Path] = true
			paths[ctr.LivenessProbe.HTTPGet.Path] = true
		}
	}
	// With role all, the web UI answers every other path with its page:
	// a probe path must be chatd's own handler, not that fallback.
	isUI := func(p string) bool {
		_, body := get(t, base+p)
		return strings.Contains(strings.ToLower(string(body)), "<!doctype html")
	}
	if !isUI("/no-such-probe") {
		t.Fatal("the UI fallback changed; this test cannot tell a probe path from it")
	}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		if code, body := get(t, base+p); code != http.StatusOK || isUI(p) {
			t.Errorf("probe path %s: %d %.60q, not one of chatd's endpoints", p, code, body)
		}
	}
	// The scrape annotation's path answers on the ops listener, and not
	// on the public one.
	for _, c := range valuesCases {
		for _, d := range render(t, c.files...).deployments {
			p := d.Spec.Template.Annotations["prometheus.io/path"]
			if p == "" {
				continue
			}
			if code, _ := get(t, ops+p); code != http.StatusOK {
				t.Errorf("%s: scrape path %s on the ops listener: %d", d.Name, p, code)
			}
			if code, _ := get(t, base+p); code == http.StatusOK {
				t.Errorf("%s: scrape path %s answers on the public listener", d.Name, p)
			}
		}
	}
}

// metricKind is a metric family's type as declared in chatd's sources.
type metricKind string

// sourceMetrics finds every metric chatd declares: the Name of the
// prometheus.*Opts literal given to prometheus.NewCounter, NewGaugeVec,
// NewHistogram, … and the name given to prometheus.NewDesc, in the
// module's non-test Go files.
func sourceMetrics(t *testing.T) map[string]metricKind {
	t.Helper()
	out := map[string]metricKind{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "deploy", "node_modules", "testdata", "vendor", "bin", "data":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		record := func(pos token.Pos, quoted string, kind metricKind) {
			name, err := strconv.Unquote(quoted)
			if err != nil {
				t.Errorf("%s: metric name %s", fset.Position(pos), quoted)
				return
			}
			out[name] = kind
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				// Options, whether passed to their New call or kept apart
				// (a table of them, as app/storemetrics.go has): the type
				// says the kind.
				if kind := optsKind(n); kind != "" {
					if name := optsName(t, fset, n); name != "" {
						record(n.Pos(), name, kind)
					}
				}
			case *ast.CallExpr:
				// A collector's own metric: gauge or counter.
				if isPrometheus(n.Fun, "NewDesc") && len(n.Args) > 0 {
					if lit, ok := n.Args[0].(*ast.BasicLit); ok {
						record(n.Pos(), lit.Value, "const")
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// isPrometheus reports whether e is prometheus.<name>.
func isPrometheus(e ast.Expr, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "prometheus"
}

// optsKind is the metric kind of a prometheus.CounterOpts, GaugeOpts,
// HistogramOpts or SummaryOpts literal, "" for any other literal.
func optsKind(lit *ast.CompositeLit) metricKind {
	for typ, kind := range map[string]metricKind{
		"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram", "SummaryOpts": "summary",
	} {
		if isPrometheus(lit.Type, typ) {
			return kind
		}
	}
	return ""
}

// optsName returns the quoted Name of an options literal, "" when it has
// none written out; a Namespace or Subsystem is an error, since this scan
// reads whole names only.
func optsName(t *testing.T, fset *token.FileSet, lit *ast.CompositeLit) string {
	t.Helper()
	var name string
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		switch k, _ := kv.Key.(*ast.Ident); {
		case k == nil:
		case k.Name == "Name":
			if v, ok := kv.Value.(*ast.BasicLit); ok {
				name = v.Value
			}
		case k.Name == "Namespace" || k.Name == "Subsystem":
			t.Errorf("%s: %s; this scan reads whole names only", fset.Position(kv.Pos()), k.Name)
		}
	}
	return name
}

// scrapedMetrics reads /metrics of a running chatd (its ops listener): the
// Go and process collectors' families, and a check on the source scan.
func scrapedMetrics(t *testing.T, ops string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, ops+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMetric = regexp.MustCompile(`\b(?:chatd|go|process)_[a-zA-Z0-9_:]*`)
	grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)[^}]*\}|(\w+))`)
)

// metricNames returns the metric names a PromQL expression reads: the
// identifiers with chatd's, Go's and the process collector's prefixes,
// outside string literals (label values).
func metricNames(expr string) []string {
	return promMetric.FindAllString(promString.ReplaceAllString(expr, `""`), -1)
}

// The dashboard is valid JSON, and every metric its queries read is one
// that chatd registers, used as its type allows.
func TestGrafanaDashboardReadsChatdMetrics(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard without uid or title")
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__all": true}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}

	known := sourceMetrics(t)
	// The source scan must see what a running chatd exports; the Go and
	// process collectors' families come from the scrape.
	_, ops := bootAll(t)
	fams := scrapedMetrics(t, ops)
	for name, mf := range fams {
		kind := metricKind(strings.ToLower(mf.GetType().String()))
		if strings.HasPrefix(name, "chatd_") {
			if k, ok := known[name]; !ok || (k != kind && k != "const") {
				t.Errorf("/metrics has %s (%s), the source scan %q", name, kind, k)
			}
			continue
		}
		known[name] = kind
	}
	for _, want := range []string{"chatd_ws_connections", "chatd_build_info", "chatd_send_latency_seconds", "chatd_store_latency_seconds", "chatd_gateway_upstream_up", "chatd_auth_logins_total", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := known[want]; !ok {
			t.Fatalf("metric %s not found in chatd; the scan is broken (have %d names)", want, len(known))
		}
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	var check func(p panel)
	check = func(p panel) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			for _, c := range p.Panels {
				check(c)
			}
			return
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: data source %+v is not Prometheus", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q query %s reads no chatd metric: %s", p.Title, tg.RefID, tg.Expr)
			}
			for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
				if v := m[1] + m[2]; !vars[v] {
					t.Errorf("panel %q uses variable $%s, which the dashboard does not define", p.Title, v)
				}
			}
			for _, n := range names {
				base, kind := n, known[n]
				if _, ok := known[n]; !ok {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if b, ok := strings.CutSuffix(n, suf); ok {
							if k := known[b]; k == "histogram" || (k == "summary" && suf != "_bucket") {
								base, kind = b, k
							}
						}
					}
				}
				switch {
				case kind == "":
					t.Errorf("panel %q reads %s, which chatd does not export", p.Title, n)
				case base == n && (kind == "histogram"):
					t.Errorf("panel %q reads histogram %s without _bucket/_sum/_count", p.Title, n)
				case kind == "counter" && !strings.Contains(tg.Expr, "rate("+n) && !strings.Contains(tg.Expr, "increase("+n):
					t.Errorf("panel %q reads counter %s without rate() or increase()", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for _, p := range dash.Panels {
		check(p)
	}
	// What an operator needs on one screen.
	for _, m := range []string{
		"chatd_ws_connections", "chatd_messages_stored_total", "chatd_messages_delivered_total",
		"chatd_send_latency_seconds", "chatd_store_latency_seconds", "chatd_gateway_upstream_up",
		"chatd_auth_logins_total", "chatd_build_info",
	} {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}

// The PromQL name extraction itself: label values and functions are not
// metric names.
func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (le, op) (rate(chatd_store_latency_seconds_bucket{instance=~"chatd_x", op!="go_y"}[$__rate_interval]))) / go_goroutines`)
	if !slices.Equal(got, []string{"chatd_store_latency_seconds_bucket", "go_goroutines"}) {
		t.Errorf("metricNames = %v", got)
	}
}
