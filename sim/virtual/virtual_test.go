package virtual_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sim/experiment"
	"github.com/skein-p2p/skein/sim/report"
	"github.com/skein-p2p/skein/sim/scenario"
	"github.com/skein-p2p/skein/sim/virtual"
)

// slow is bound by a node's default anti-entropy period (10 s): every
// pubsub message is lost, peers connected long ago are not fresh, so
// only the periodic exchange brings a message. On the wall clock it takes
// about 10 s a run; on the virtual clock it takes the CPU work only.
const slow = `
seed: 3
nodes: 4
links:
  default: {latency: 20ms, jitter: 5ms, loss: 1}
traffic:
  - {from: 0, start: 0s, every: 1s, count: 2, size: 200}
replication: {anti_entropy: 10s, reexchange: []}
run: {settle_timeout: 60s}
`

func TestVirtualClock(t *testing.T) {
	s, err := scenario.Parse("slow.yaml", []byte(slow), "slow")
	if err != nil {
		t.Fatal(err)
	}
	res, err := virtual.Run(t, s, experiment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clock != virtual.Clock || !res.Settled || res.Expected != 6 || len(res.Deliveries) != 6 {
		t.Fatalf("clock %q settled %v: %d of %d deliveries, want 6", res.Clock, res.Settled, len(res.Deliveries), res.Expected)
	}
	for _, d := range res.Deliveries {
		// Pubsub loses everything: a message arrives with a head
		// exchange, never faster than the link.
		if lat := d.Delivered - d.Sent; lat < 20*time.Millisecond {
			t.Errorf("message %d reached %s %v after it was sent, faster than the 20 ms link", d.Seq, d.To, lat)
		}
	}
	// Only an anti-entropy round carries a message, and the first comes
	// 10 s after the nodes start: the run lasts that long in simulated
	// time (and, the test's point, not in wall time).
	if d := res.Setup + res.Run; d < 10*time.Second {
		t.Errorf("setup and run took %v of simulated time: only anti-entropy, every 10 s, can carry the messages", d)
	}
	t.Logf("virtual: convergence %v, run %v", res.Convergence, res.Run)
}

// TestScenarioFile runs the scenario file named by SKEIN_SIM_SCENARIO on
// the virtual clock and writes its report to SKEIN_SIM_OUT (default
// sim-out/NAME-virtual under the current directory). SKEIN_SIM_SET sets
// keys as skein sim run --sweep does with one value each
// ("nodes=100,links.default.loss=0.1"). Without SKEIN_SIM_SCENARIO it is
// skipped.
func TestScenarioFile(t *testing.T) {
	path := os.Getenv("SKEIN_SIM_SCENARIO")
	if path == "" {
		t.Skip("set SKEIN_SIM_SCENARIO to a scenario file")
	}
	var ovs []scenario.Override
	if set := os.Getenv("SKEIN_SIM_SET"); set != "" {
		for kv := range strings.SplitSeq(set, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("SKEIN_SIM_SET: %q is not key=value", kv)
			}
			ovs = append(ovs, scenario.Override{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
		}
	}
	s, err := scenario.Load(path, ovs...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := virtual.Run(t, s, experiment.Options{Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("SKEIN_SIM_OUT")
	if out == "" {
		out = filepath.Join("sim-out", s.Name+"-virtual")
	}
	files, err := report.Write(out, res)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.Summary())
	t.Logf("wrote %v", files)
}

// The worked example of docs/experiments.md, bound by a 10 s anti-entropy
// period across its regions, settles on the virtual clock.
func TestExampleOnVirtualClock(t *testing.T) {
	s, err := scenario.Load("../../examples/sim/suite-order-clock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Crypto.Suite != scenario.SuiteAESGCM || s.Log.Merge != scenario.MergeLamportCID {
		t.Fatalf("the example runs suite %q and order %q", s.Crypto.Suite, s.Log.Merge)
	}
	res, err := virtual.Run(t, s, experiment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Settled || len(res.Deliveries) != res.Expected || res.Expected != 72*11 {
		t.Fatalf("settled %v: %d of %d deliveries, want %d", res.Settled, len(res.Deliveries), res.Expected, 72*11)
	}
	if res.LatencyQuantile(0.99) < time.Second {
		t.Errorf("p99 latency %v: cross-region messages wait for anti-entropy (10 s), not less than 1 s", res.LatencyQuantile(0.99))
	}
	t.Logf("simulated: p50 %v, p99 %v, convergence %v", res.LatencyQuantile(0.5), res.LatencyQuantile(0.99), res.Convergence)
}
