// Package bench is `skein bench`: it measures the scenarios of issue 14
// (a-f: append, catch-up, live latency, bursts, cold open and idle memory,
// bytes and CPU per message) on real nodes — `skein run` children of the
// same binary, their store and network plugins linked in or out of
// process, two nodes over loopback TCP — and writes a markdown and JSON
// report: the machine, versions and commit, the load average before and
// after each scenario, the median of the runs of every figure beside its
// target and beside a limit measured in the same run (Ed25519 per core,
// pebble synced puts, a libp2p stream round trip), and, with profiles on,
// the functions that bound it.
//
//	r, err := bench.Run(ctx, bench.Config{Binary: "/path/to/skein", Runs: 3})
//	...
//	r.Markdown(os.Stdout)
//
// docs/performance.md describes the scenarios and keeps the latest report.
package bench
