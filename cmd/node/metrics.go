package main

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/metrics"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/peersource"
	"github.com/skein-p2p/skein/sdk"
)

// scrapeTimeout bounds what one scrape asks the plugins and the messenger.
const scrapeTimeout = 5 * time.Second

// startMetrics serves the Prometheus endpoint of metrics.listen (nil, nil
// when it is empty): core/metrics' counters and what the node, its
// plugins and its messenger (ms, may be nil) report when scraped.
func startMetrics(cfg *config.Config, n *node.Node, ms *messengerService, sources *peersource.Book, logger *slog.Logger) (*metrics.Server, error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	state := func(ctx context.Context) metrics.NodeState {
		return nodeState(ctx, n, ms, sources)
	}
	srv, err := metrics.Listen(cfg.Metrics.Listen, cfg.Metrics.Pprof, logger, metrics.NewNodeCollector(state, scrapeTimeout))
	if err != nil {
		return nil, err
	}
	logger.Info("metrics serving", "addr", srv.Addr(), "path", "/metrics", "pprof", cfg.Metrics.Pprof)
	return srv, nil
}

// nodeState is what the node reports when scraped.
func nodeState(ctx context.Context, n *node.Node, ms *messengerService, sources *peersource.Book) metrics.NodeState {
	var st metrics.NodeState
	for _, h := range n.Health(ctx) {
		st.Plugins = append(st.Plugins, metrics.PluginState{
			Name: h.Name, ID: h.ID, Mode: h.Mode, Up: h.State == "running", Restarts: h.Restarts,
		})
		if slices.Contains(h.Kinds, sdk.KindNetwork) {
			st.Transports = append(st.Transports, metrics.TransportsFromDetails(h.Details)...)
		}
	}
	if ms == nil {
		return st
	}
	if peers, err := ms.m.Peers(ctx); err == nil {
		st.PeersBySource = map[string]int{}
		for _, p := range peers {
			srcs := sources.Sources(p.ID)
			if len(srcs) == 0 {
				srcs = []string{"unknown"}
			}
			for _, s := range srcs {
				st.PeersBySource[s]++
			}
		}
	}
	if syncs, err := ms.m.SyncStatus(ctx, ""); err == nil {
		for _, s := range syncs {
			for _, l := range s.Logs {
				st.Groups = append(st.Groups, metrics.GroupState{
					Group: s.Group.Fingerprint(), Log: l.Log, Entries: l.Entries, Missing: l.Missing, LastSync: s.LastSync,
				})
			}
		}
	}
	return st
}
