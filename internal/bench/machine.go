package bench

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// reportedModules are the modules whose versions bound the figures.
var reportedModules = []string{
	"github.com/libp2p/go-libp2p",
	"github.com/libp2p/go-libp2p-pubsub",
	"github.com/ipfs/boxo",
	"github.com/cockroachdb/pebble/v2",
	"github.com/ipfs/go-ds-pebble",
	"github.com/hashicorp/go-plugin",
	"google.golang.org/grpc",
}

// machine describes this machine from /proc and the runtime.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseUint(f[0], 10, 64)
					m.MemoryMB = kb / 1024
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// buildInfo returns the commit the running binary was built from, the Go
// version and the versions of reportedModules.
func buildInfo() (commit, goVersion string, modules map[string]string) {
	commit, goVersion, modules = "unknown", runtime.Version(), map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	goVersion = bi.GoVersion
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		commit = rev + dirty
	}
	for _, d := range bi.Deps {
		for _, want := range reportedModules {
			if d.Path == want {
				modules[d.Path] = d.Version
			}
		}
	}
	return
}
