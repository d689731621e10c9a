// Package netns holds Skein's multi-host end-to-end tests: real `skein`
// nodes, each in a Linux network namespace of its own, reaching each other
// over virtual Ethernet links through a bridge, as separate machines on one
// LAN would.
//
// The package has no code outside its tests. Each test builds the skein
// binary (go build ./cmd/node) once, then:
//
//   - creates a bridge namespace holding a Linux bridge, and one namespace per
//     node joined to the bridge by a veth pair, with a private address
//     (10.213.0.0/24) that exists only inside these namespaces; namespace
//     names are unique per test run, and every namespace is deleted in
//     t.Cleanup, after a failure too;
//   - runs `ip netns exec <ns> skein run` per node (the store and network
//     plugins out of process), the network plugin listening on the node's
//     namespace address, later nodes bootstrapping to earlier ones through
//     the config's plugins.network.config.bootstrap;
//   - drives every node through the skein CLI (group create, invite, join,
//     send, messages --json, peers, sync status --json) over the node's unix
//     socket, which the CLI reaches from outside the namespace.
//
// The LAN tests (lan_test.go) run nodes made by `skein init --preset lan`
// with the config as written: no address or peer anywhere; they find each
// other by multicast DNS on the namespaces' links, watched by an observer
// host and, in TestLANFlood, attacked by a flooding one (the test binary
// re-executed in a namespace, lan_helpers_test.go). Hosts may sit on
// several bridges (newBridgedTopology).
//
// A partition takes a node's bridge port down (`ip link set down` in the
// bridge namespace): its packets go nowhere, as with a pulled cable.
//
// The tests need root, iproute2's `ip` and a kernel that lets root create
// network namespaces, veth pairs and bridges; without them they skip and say
// why. No traffic leaves the test's namespaces: they have no route to
// anything else, and nothing multicasts outside them (mDNS runs only on
// the namespaces' own links).
//
//	sudo go test ./internal/e2e/netns/ -v
package netns
