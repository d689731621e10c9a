// Package node assembles a Skein node from its configuration: it checks the
// plugins' config, starts every enabled plugin through core/pluginhost (out
// of process or linked in, as config says), reports their health, and stops
// them.
//
// Start also attaches every transport plugin to the network plugin
// (pluginhost.KeepTransportAttached), again after either restarts, and
// fails if the network cannot take one. RunDiscovery (or Discover) makes
// every discovery plugin advertise the node's network peer and dials the
// peers they find, until its context ends:
//
//	go n.RunDiscovery(ctx, node.DiscoveryNamespace)
//
// Usage:
//
//	cfg, err := config.Load(config.WithFile(path), config.WithEnviron(os.Environ))
//	...
//	n, err := node.New(cfg, node.WithLogger(logger))
//	if err := n.Start(ctx); err != nil { ... } // nothing is left running on error
//	defer n.Stop(context.Background())
//	for _, h := range n.Health(ctx) { fmt.Println(h.Name, h.PID, h.Healthy) }
//	st, err := n.Store("store")
package node
