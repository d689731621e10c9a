package memstore

import (
	"flag"
	"testing"

	"github.com/skein-p2p/skein/plugins/store/internal/storetest"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

var long = flag.Bool("store.long", false, "run the long store tests (the semantics suite out of process)")

func TestMain(m *testing.M) {
	// The out-of-process tests re-execute this binary as the plugin.
	plugintest.Main(m, map[string]func() sdk.Plugin{
		ID: func() sdk.Plugin { return New() },
	})
}

func TestConformanceLinkedIn(t *testing.T) {
	s := New()
	plugintest.StartLinked(t, s, nil)
	plugintest.TestStore(t, func(testing.TB) sdk.Store { return s })
}

func TestConformanceOutOfProcess(t *testing.T) {
	rp := plugintest.StartProcess(t, ID)
	st, ok := rp.Store()
	if !ok {
		t.Fatal("plugin does not serve a store")
	}
	plugintest.TestStore(t, func(testing.TB) sdk.Store { return st })
}

func TestPluginLifecycle(t *testing.T) {
	plugintest.TestPlugin(t, func(testing.TB) sdk.Plugin { return New() })
}

// TestSemanticsOutOfProcess runs this package's own semantics suite across
// the wire, one fresh plugin process per case.
func TestSemanticsOutOfProcess(t *testing.T) {
	if !*long {
		t.Skip("long: starts a plugin process per case; run with -store.long")
	}
	storetest.Run(t, func(t testing.TB) sdk.Store {
		st, ok := plugintest.StartProcess(t, ID).Store()
		if !ok {
			t.Fatal("plugin does not serve a store")
		}
		return st
	})
}
