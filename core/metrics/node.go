package metrics

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NodeState is what a node reports when scraped: the figures that live in
// its plugins and replicas rather than in counters of this process.
type NodeState struct {
	Plugins    []PluginState
	Transports []TransportState
	// PeersBySource counts connected peers by how they were found (a
	// discovery plugin's name, "dht", "bootstrap", "manual"; "unknown" for
	// peers that dialled in). A peer found several ways counts under each.
	PeersBySource map[string]int
	Groups        []GroupState
}

// PluginState is one plugin of the node.
type PluginState struct {
	Name, ID, Mode string
	Up             bool
	Restarts       int
}

// TransportState is one transport of the network plugin: the peers
// connected over it and the stream bytes exchanged with peers connected
// over it (above the security and muxer layers).
type TransportState struct {
	Transport         string
	Peers             int
	BytesIn, BytesOut uint64
}

// GroupState is the sync state of one log of a group.
type GroupState struct {
	// Group is the group's fingerprint; Log "meta" or "messages".
	Group, Log string
	Entries    int
	// Missing counts heads peers announced that are not here yet.
	Missing int
	// LastSync is when remote heads were last joined with nothing left
	// missing (zero: never).
	LastSync time.Time
}

// NodeCollector collects a NodeState when scraped.
type NodeCollector struct {
	state   func(context.Context) NodeState
	timeout time.Duration
}

// NewNodeCollector returns a collector that calls state (bounded by
// timeout) at every scrape.
func NewNodeCollector(state func(context.Context) NodeState, timeout time.Duration) *NodeCollector {
	return &NodeCollector{state: state, timeout: timeout}
}

var (
	descPluginUp = prometheus.NewDesc(Namespace+"_plugin_up",
		"1 when the plugin is running, 0 while it is down or restarting.", []string{"plugin", "id", "mode"}, nil)
	descPluginRestarts = prometheus.NewDesc(Namespace+"_plugin_restarts_total",
		"Restarts of the plugin after a crash since the node started.", []string{"plugin", "id", "mode"}, nil)
	descTransportPeers = prometheus.NewDesc(Namespace+"_peers_connected",
		"Peers connected, by the transport of their connection.", []string{"transport"}, nil)
	descTransportIn = prometheus.NewDesc(Namespace+"_transport_received_bytes_total",
		"Stream bytes received from peers, by the transport of their connection.", []string{"transport"}, nil)
	descTransportOut = prometheus.NewDesc(Namespace+"_transport_sent_bytes_total",
		"Stream bytes sent to peers, by the transport of their connection.", []string{"transport"}, nil)
	descPeersBySource = prometheus.NewDesc(Namespace+"_peers_connected_by_source",
		"Peers connected, by how they were found (discovery plugin, dht, bootstrap, manual, unknown).", []string{"source"}, nil)
	descGroupEntries = prometheus.NewDesc(Namespace+"_group_log_entries",
		"Entries held in the group's log.", []string{"group", "log"}, nil)
	descGroupMissing = prometheus.NewDesc(Namespace+"_group_log_missing_heads",
		"Heads peers announced for the group's log that are not here yet.", []string{"group", "log"}, nil)
	descGroupLag = prometheus.NewDesc(Namespace+"_group_sync_lag_seconds",
		"Seconds since the group was last in sync while heads are missing; 0 when nothing is missing.", []string{"group"}, nil)
)

// Describe implements prometheus.Collector.
func (c *NodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPluginUp, descPluginRestarts, descTransportPeers, descTransportIn,
		descTransportOut, descPeersBySource, descGroupEntries, descGroupMissing, descGroupLag} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *NodeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st := c.state(ctx)
	for _, p := range st.Plugins {
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descPluginUp, prometheus.GaugeValue, up, p.Name, p.ID, p.Mode)
		ch <- prometheus.MustNewConstMetric(descPluginRestarts, prometheus.CounterValue, float64(p.Restarts), p.Name, p.ID, p.Mode)
	}
	for _, t := range st.Transports {
		ch <- prometheus.MustNewConstMetric(descTransportPeers, prometheus.GaugeValue, float64(t.Peers), t.Transport)
		ch <- prometheus.MustNewConstMetric(descTransportIn, prometheus.CounterValue, float64(t.BytesIn), t.Transport)
		ch <- prometheus.MustNewConstMetric(descTransportOut, prometheus.CounterValue, float64(t.BytesOut), t.Transport)
	}
	for src, n := range st.PeersBySource {
		ch <- prometheus.MustNewConstMetric(descPeersBySource, prometheus.GaugeValue, float64(n), src)
	}
	now := time.Now()
	lag := map[string]float64{}
	for _, g := range st.Groups {
		ch <- prometheus.MustNewConstMetric(descGroupEntries, prometheus.GaugeValue, float64(g.Entries), g.Group, g.Log)
		ch <- prometheus.MustNewConstMetric(descGroupMissing, prometheus.GaugeValue, float64(g.Missing), g.Group, g.Log)
		if _, ok := lag[g.Group]; !ok {
			lag[g.Group] = 0
		}
		if g.Missing > 0 && !g.LastSync.IsZero() {
			lag[g.Group] = max(lag[g.Group], now.Sub(g.LastSync).Seconds())
		}
	}
	for g, s := range lag {
		ch <- prometheus.MustNewConstMetric(descGroupLag, prometheus.GaugeValue, s, g)
	}
}

// Network status detail keys with which a network plugin reports its
// transports (sdk.Status.Details): transport.<name>.peers,
// transport.<name>.bytes_in and transport.<name>.bytes_out.
const (
	DetailTransportPrefix = "transport."
	DetailPeers           = ".peers"
	DetailBytesIn         = ".bytes_in"
	DetailBytesOut        = ".bytes_out"
)

// TransportsFromDetails reads the transports a network plugin reports in
// its status details (see DetailTransportPrefix), sorted by name. Values
// that are not numbers are skipped.
func TransportsFromDetails(details map[string]string) []TransportState {
	byName := map[string]*TransportState{}
	var names []string
	for k, v := range details {
		rest, ok := strings.CutPrefix(k, DetailTransportPrefix)
		if !ok {
			continue
		}
		for _, suffix := range []string{DetailPeers, DetailBytesIn, DetailBytesOut} {
			name, ok := strings.CutSuffix(rest, suffix)
			if !ok || name == "" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			t := byName[name]
			if t == nil {
				t = &TransportState{Transport: name}
				byName[name] = t
				names = append(names, name)
			}
			switch suffix {
			case DetailPeers:
				t.Peers = int(n)
			case DetailBytesIn:
				t.BytesIn = n
			case DetailBytesOut:
				t.BytesOut = n
			}
		}
	}
	slices.Sort(names)
	out := make([]TransportState, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return out
}
