// Package metrics holds the node's Prometheus metrics: the counters the
// core adds to as it works (messages, entries joined and rejected, blocks
// fetched), the collectors that read the rest when scraped (plugins,
// transports, peers, sync lag; see NodeCollector), the Go runtime, and
// the endpoint that serves them (metrics.listen in the node's config).
//
// The counters are process-wide, so the packages that count (core/group,
// core/messenger, core/replication) only call one of them:
//
//	metrics.MessagesSent.Inc()
//
// docs/operations.md lists every metric.
package metrics
