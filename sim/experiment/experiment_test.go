package experiment_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sim/experiment"
	"github.com/skein-p2p/skein/sim/report"
	"github.com/skein-p2p/skein/sim/scenario"
)

// tiny: 6 nodes in two regions, lossy links, one node churning, the
// regions partitioned while messages flow, then healed.
const tiny = `
seed: 11
nodes: 6
regions: {left: 0%-50%, right: 50%-100%}
links:
  default: {latency: 2ms, jitter: 1ms, loss: 0.2, bandwidth: 1MiB}
  regions:
    - {between: [left, right], latency: 5ms}
traffic:
  - {from: [0, 3], start: 0s, every: 40ms, count: 3, size: 300}
churn:
  - {nodes: 1-2, pick: 1, offline: 10ms, online: 150ms}
partitions:
  - {at: 0s, heal: 200ms, sides: [left]}
replication: {anti_entropy: 100ms}
run: {settle_timeout: 60s, setup_timeout: 2m}
`

func run(t *testing.T, seed string) *report.Result {
	t.Helper()
	s, err := scenario.Parse("tiny.yaml", []byte(tiny), "tiny", scenario.Override{Key: "seed", Value: seed})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := experiment.Run(ctx, s, experiment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Settled {
		t.Fatalf("not settled: %d of %d deliveries", len(res.Deliveries), res.Expected)
	}
	return res
}

type who struct {
	Seq      int
	From, To string
	Size     int
}

func deliveries(r *report.Result) []who {
	out := make([]who, len(r.Deliveries))
	for i, d := range r.Deliveries {
		out[i] = who{d.Seq, d.From, d.To, d.Size}
	}
	return out
}

func sends(r *report.Result) []who {
	out := make([]who, len(r.Sends))
	for i, s := range r.Sends {
		out[i] = who{s.Seq, s.From, s.Group, s.Size}
	}
	return out
}

// TestSameSeedSameDeliveries: two runs of one scenario and seed send the
// same messages from the same nodes and deliver each to the same members
// (times differ: they are measured on a shared machine's clock).
func TestSameSeedSameDeliveries(t *testing.T) {
	a, b := run(t, "11"), run(t, "11")
	if len(a.Sends) != 6 || len(a.Deliveries) != 6*5 || a.Expected != 30 {
		t.Fatalf("sends %d, deliveries %d of %d; want 6 and 30", len(a.Sends), len(a.Deliveries), a.Expected)
	}
	if !reflect.DeepEqual(sends(a), sends(b)) {
		t.Fatalf("same seed, different sends:\n%v\n%v", sends(a), sends(b))
	}
	if !reflect.DeepEqual(deliveries(a), deliveries(b)) {
		t.Fatalf("same seed, different deliveries:\n%v\n%v", deliveries(a), deliveries(b))
	}
	for _, r := range []*report.Result{a, b} {
		var sent, recv uint64
		for _, n := range r.NodeStats {
			sent += n.BytesSent
			recv += n.BytesReceived
		}
		if sent == 0 || recv == 0 || r.Counters["lost"] == 0 {
			t.Fatalf("bytes %d/%d, lost %d: the network counters saw nothing", sent, recv, r.Counters["lost"])
		}
		for _, d := range r.Deliveries {
			if d.Latency() < 0 {
				t.Fatalf("delivery before its send: %+v", d)
			}
		}
	}
}
