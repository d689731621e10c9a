// Package sdk is what a Skein plugin author imports: one Go interface per
// plugin kind (Store, Transport, Discovery, Network), the Plugin lifecycle
// every plugin implements, Serve to run a plugin as its own process, and
// the host side (Remote, HostPluginSets, Handshake) that core/pluginhost
// uses to talk to one.
//
// # Writing a plugin
//
// Implement Plugin (Describe, Configure, Start, Stop) and the interface of
// each kind the plugin gives, then make main one line:
//
//	func main() { sdk.Serve(mytransport.New()) }
//
// Serve speaks the v1 wire protocol (gRPC behind HashiCorp go-plugin's
// handshake) and serves every kind the value implements. Log with log/slog:
// Serve points slog's default logger at stderr and the host's event stream,
// and the host logs each record at its level with its fields. A plugin that
// keeps a logger when it is made is served with ServeFunc, which makes it
// after that. Never write to stdout: it carries the handshake.
//
// Optional capabilities are separate interfaces found by type assertion:
// StatusReporter for health, PacketTransport for radio-like links, and for
// a Network PeerNotifier, DirectMessenger, PeerBlocker, TransportAttacher,
// TopicGate (closed topics), TopicValidator (the host judges each pubsub
// message), PeerScorer and TopicPeerNotifier (peers joining a pubsub
// topic). Serve announces each one the value implements in Describe's
// capabilities (CapNetworkPeerEvents, CapNetworkDirect,
// CapNetworkBlockPeer, CapNetworkTransports, CapNetworkTopicGate,
// CapNetworkTopicValidator, CapNetworkPeerScorer,
// CapNetworkTopicPeerEvents) and carries it over the
// wire; a host's validator answers the plugin's validations over one
// stream per topic.
// An out-of-process network attaches a transport plugin by its
// TransportEndpoint: it connects to the transport plugin process itself
// (DialTransport), so transport bytes never pass through the host.
//
// # Testing a plugin
//
// Package sdk/plugintest has a conformance suite per kind (and one for the
// topic capabilities of a network, TestNetworkTopics) and runs the same
// suite against the plugin linked in and out of process.
//
// # Hosting plugins
//
// A host launches a binary with go-plugin using Handshake and
// HostPluginSets, dispenses PluginName and passes the result to Remote. A
// RemotePlugin is itself a Plugin; after Describe its Store, Transport and
// Discovery methods return the kinds it declared, as the same interfaces a
// linked-in plugin implements. See host.go and docs/plugin-authors.md.
//
// A remote Network always has the methods of PeerNotifier, DirectMessenger
// and PeerBlocker, so type assertions on it succeed; a method whose
// capability the plugin did not announce fails with ErrCapabilityNotServed,
// and callers fall back on that error as on a failed assertion:
//
//	if dm, ok := nw.(sdk.DirectMessenger); ok {
//		err := dm.HandleRequests("/skein/heads/1", answerHeads)
//		if errors.Is(err, sdk.ErrCapabilityNotServed) {
//			// pubsub only
//		}
//	}
//
// HandleRequests on a remote network opens a stream on which the plugin
// forwards the requests its network receives; the handler runs in the host.
//
// Transport bytes do not go through RPCs: in socket mode each connection is
// its own unix socket (or the transport's own descriptor, handed over), in
// stream mode a gRPC stream; RemotePlugin picks by capability.
package sdk
