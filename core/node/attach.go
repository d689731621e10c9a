package node

import (
	"context"
	"fmt"
	"slices"

	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

// pluginsOfKind lists the running plugins that declared kind, in start
// order.
func pluginsOfKind(host *pluginhost.Host, kind sdk.Kind) []*pluginhost.Plugin {
	var out []*pluginhost.Plugin
	for _, p := range host.Plugins() {
		if slices.Contains(p.Description().Kinds, kind) {
			out = append(out, p)
		}
	}
	return out
}

// attachTransports attaches every transport plugin to every network plugin
// (sdk.TransportAttacher) and keeps them attached across restarts of
// either until ctx ends. A transport the network cannot take is an error:
// a transport enabled in config and silently unused would fail open.
func (n *Node) attachTransports(ctx context.Context, host *pluginhost.Host) error {
	networks := pluginsOfKind(host, sdk.KindNetwork)
	transports := pluginsOfKind(host, sdk.KindTransport)
	if len(transports) > 0 && len(networks) == 0 {
		n.logger.Warn("transport plugins enabled but no network plugin to attach them to", "transports", len(transports))
		return nil
	}
	for _, np := range networks {
		for _, tp := range transports {
			if err := pluginhost.KeepTransportAttached(ctx, np, tp); err != nil {
				return fmt.Errorf("start node: %w", err)
			}
			n.logger.Info("transport attached to network", "transport", tp.Name(), "network", np.Name())
		}
	}
	return nil
}
