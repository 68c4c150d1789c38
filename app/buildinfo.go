package app

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the release of this binary, stamped by `make build` (and the
// Dockerfile) with -ldflags "-X github.com/chatd/chatd/app.Version=…" from
// `git describe --always --dirty`. Empty in a plain `go build`.
var Version = ""

// BuildVersion is Version, else the module version Go recorded (set by
// `go install …@v1.2.3`), else "(devel)".
func BuildVersion() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// newBuildInfo is chatd_build_info{version, goversion}, always 1: a
// dashboard joins on it to show which release each instance runs.
func newBuildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "chatd_build_info",
		Help:        "Always 1; the labels say which chatd release and Go version this process runs.",
		ConstLabels: prometheus.Labels{"version": BuildVersion(), "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
