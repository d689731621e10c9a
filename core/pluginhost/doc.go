// Package pluginhost runs the node's plugins: it is the go-plugin client
// side of Skein, and the only core package that imports go-plugin.
//
// A plugin runs in one of three modes, picked per plugin by config:
//
//   - process: the host checks the binary's sha256 against config, starts it
//     with an allow-listed environment (not the host's), completes the
//     go-plugin gRPC handshake within StartTimeout, and logs the plugin's
//     stderr into the node's slog under plugin=<name>. On Linux the child
//     gets Pdeathsig, so it dies with the node. Built-in plugins run this way
//     by re-executing the node's own binary (see SelfCommand).
//   - linked: the plugin registered under its namespaced ID (Register) runs
//     in the host's process, behind the same API.
//   - reattach: the host attaches to a plugin started by hand in debug mode
//     (SKEIN_PLUGIN_DEBUG=1), from the SKEIN_PLUGIN_REATTACH line it printed.
//
// Every plugin is Described, Configured with its config subtree and Started.
// A crashed plugin process is restarted with exponential backoff and
// re-Configured and re-Started with the same config, while the node runs on.
// The kind accessors (Plugin.Store, Plugin.Transport, Plugin.Discovery,
// Plugin.Network) return proxies implementing the sdk interfaces that survive restarts: a
// call in flight when the plugin dies fails with ErrPluginCrashed, except an
// idempotent call, which is retried on the restarted plugin within the
// call's context. The network proxy also carries the optional network
// capabilities (sdk.PeerNotifier, sdk.DirectMessenger, sdk.PeerBlocker):
// request handlers are registered again on a restarted plugin by the host,
// peer-event channels close on a crash, and direct requests and peer
// blocks are not retried. Stop sends the Stop RPC with a deadline and kills
// the process if it has not stopped by then.
//
// KeepTransportAttached attaches a transport plugin to a network plugin
// (sdk.TransportAttacher) and attaches it again after a restart of either.
// A linked-in network gets the transport proxy; an out-of-process network
// gets the transport plugin's endpoint (the transport proxy is an
// sdk.EndpointTransport) and connects to that process itself.
//
// Usage:
//
//	h := pluginhost.New(logger)
//	defer h.Stop(context.Background())
//	p, err := h.Launch(ctx, pluginhost.Spec{
//		Name:    "store",
//		ID:      "store.pebble",
//		Command: "/usr/lib/skein/skein-store",
//		SHA256:  "ab12...",
//		Config:  map[string]any{"path": "/var/lib/skein/store"},
//	})
//	if err != nil {
//		return err // names the plugin and says what is wrong
//	}
//	st, err := p.Store() // an sdk.Store
//
// A built-in plugin out of process re-executes the node's binary:
//
//	path, sum, err := pluginhost.SelfCommand()
//	spec := pluginhost.Spec{Name: "store", ID: "store.pebble", Command: path,
//		SHA256: sum, Args: []string{"plugin", "serve", "store.pebble"}}
//
// and `skein plugin serve <id>` serves what was registered for linked mode:
//
//	f, ok := pluginhost.Lookup(id)
//	sdk.Serve(f())
package pluginhost
