// Package scenario reads experiment files for `skein sim`: how many nodes,
// the links between them (latency, jitter, loss, bandwidth; by default,
// by region pair, by node pair), groups and their members, a traffic
// schedule, churn, partitions and heals, and the seed.
//
// Decoding is strict, like the node's config: an unknown key, a value of
// the wrong type or a selector that names no node is a Problem naming the
// file, line and dotted key; every problem is reported at once.
//
// A Scenario resolves into a Plan: node names, each node's region, the
// link rules, the groups' members and a timeline of events sorted by
// time. The plan is a pure function of the file and its seed, so two runs
// of one scenario send the same messages from the same nodes at the same
// offsets, churn the same nodes and draw the same link losses.
//
// Usage sketch:
//
//	s, err := scenario.Load("examples/sim/partition-heal.yaml", scenario.Override{Key: "nodes", Value: "100"})
//	if err != nil { ... } // *scenario.InvalidError lists every problem
//	plan, _ := s.Plan()
//	for _, ev := range plan.Events { ... }
package scenario
