package plugintest_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// The plugins this test binary serves when re-executed by StartProcess.
var children = map[string]func() sdk.Plugin{
	"memstore":     func() sdk.Plugin { return plugintest.NewMemStore() },
	"memtransport": func() sdk.Plugin { return plugintest.NewMemTransport() },
	"memdiscovery": func() sdk.Plugin { return plugintest.NewMemDiscovery(plugintest.NewDiscoveryMedium()) },
	"logger":       func() sdk.Plugin { return &loggingStore{plugintest.NewMemStore()} },
}

// loggingStore logs a warning with fields when started.
type loggingStore struct{ *plugintest.MemStore }

func (s *loggingStore) Start(ctx context.Context) error {
	slog.Warn("store warning", "free", "1%")
	return s.MemStore.Start(ctx)
}

// TestProcessLogsAndCleanExit: WithLogs shows the plugin's records at their
// level with their fields; when the test ends the plugin exits by itself
// (no SIGKILL, no ERROR line) and leaves no socket behind.
func TestProcessLogsAndCleanExit(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var logs lockedBuffer
	t.Run("plugin", func(t *testing.T) {
		rp := plugintest.StartProcess(t, "logger", plugintest.WithLogs(&logs))
		s, _ := rp.Store()
		if err := s.Put(context.Background(), []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		tr := plugintest.StartProcess(t, "memtransport", plugintest.WithDataPlane(sdk.DataPlaneSocket))
		transport, _ := tr.Transport()
		plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return transport, "" })
	})
	out := logs.String()
	if !regexp.MustCompile(`\[WARN\] +plugintest\.[^:]*: store warning: free="?1%`).MatchString(out) {
		t.Errorf("the plugin's warning is not shown as a WARN with its field:\n%s", out)
	}
	if strings.Contains(out, "[ERROR]") || strings.Contains(out, "killed") || !strings.Contains(out, "plugin process exited") {
		t.Errorf("the plugin did not exit cleanly:\n%s", out)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the temp directory: %s", e.Name())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMain(m *testing.M) { plugintest.Main(m, children) }

func TestMemStoreLinkedIn(t *testing.T) {
	s := plugintest.NewMemStore()
	plugintest.StartLinked(t, s, nil)
	plugintest.TestStore(t, func(testing.TB) sdk.Store { return s })
}

func TestMemStoreOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, "memstore")
	s, ok := rp.Store()
	if !ok {
		t.Fatal("plugin does not serve a store")
	}
	plugintest.TestStore(t, func(testing.TB) sdk.Store { return s })
}

func TestMemTransportLinkedIn(t *testing.T) {
	tr := plugintest.NewMemTransport()
	plugintest.StartLinked(t, tr, nil)
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return tr, "" })
}

func TestMemTransportOutOfProcess(t *testing.T) {
	cases := []struct {
		name  string
		plane sdk.DataPlane
	}{
		{"socket", sdk.DataPlaneSocket},
		{"stream", sdk.DataPlaneStream},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rp := plugintest.StartProcess(t, "memtransport", plugintest.WithDataPlane(tc.plane))
			tr, ok := rp.Transport()
			if !ok {
				t.Fatal("plugin does not serve a transport")
			}
			plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return tr, "" })
		})
	}
}

func TestMemDiscoveryLinkedIn(t *testing.T) {
	medium := plugintest.NewDiscoveryMedium()
	a, b := plugintest.NewMemDiscovery(medium), plugintest.NewMemDiscovery(medium)
	plugintest.StartLinked(t, a, nil)
	plugintest.StartLinked(t, b, nil)
	plugintest.TestDiscovery(t, func(testing.TB) (sdk.Discovery, sdk.Discovery) { return a, b })
}

func TestMemDiscoveryOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, "memdiscovery")
	d, ok := rp.Discovery()
	if !ok {
		t.Fatal("plugin does not serve discovery")
	}
	plugintest.TestDiscovery(t, func(testing.TB) (sdk.Discovery, sdk.Discovery) { return d, d })
}

func TestLifecycleLinkedIn(t *testing.T) {
	for name, newPlugin := range children {
		t.Run(name, func(t *testing.T) {
			plugintest.TestPlugin(t, func(testing.TB) sdk.Plugin { return newPlugin() })
		})
	}
}

func TestLifecycleOutOfProcess(t *testing.T) {
	for name := range children {
		t.Run(name, func(t *testing.T) {
			rp := plugintest.StartProcess(t, name, plugintest.WithoutStart())
			plugintest.TestPlugin(t, func(testing.TB) sdk.Plugin { return rp })
		})
	}
}

func TestUnixTransportLinkedIn(t *testing.T) {
	tr := plugintest.UnixTransport{Proto: "x-test-unix"}
	plugintest.StartLinked(t, tr, nil)
	dir := plugintest.SocketDir(t)
	n := 0
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) {
		n++
		return tr, filepath.Join(dir, fmt.Sprintf("s%d", n))
	})
}
