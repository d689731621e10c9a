// Package plugintest is the companion test package of sdk: conformance
// suites for every plugin kind, in-memory reference implementations, and
// helpers that run a plugin out of process through the real go-plugin
// handshake, so that one suite checks an implementation linked in and the
// same implementation across the wire.
//
// A plugin author's test file:
//
//	func TestMain(m *testing.M) {
//		plugintest.Main(m, map[string]func() sdk.Plugin{
//			"mystore": func() sdk.Plugin { return mystore.New() },
//		})
//	}
//
//	func TestLinkedIn(t *testing.T) {
//		plugintest.TestStore(t, func(t testing.TB) sdk.Store { return openConfigured(t, mystore.New()) })
//	}
//
//	func TestOutOfProcess(t *testing.T) {
//		plugintest.TestStore(t, func(t testing.TB) sdk.Store {
//			rp := plugintest.StartProcess(t, "mystore", plugintest.WithConfig(cfg))
//			st, _ := rp.Store()
//			return st
//		})
//	}
//
// StartProcess re-executes the test binary (os.Args[0]) with ChildEnv set;
// Main sees it and serves the named plugin with sdk.Serve instead of
// running the tests. StartBinary does the same for a plugin binary by path.
package plugintest
