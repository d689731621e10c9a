package report_test

import (
	"fmt"
	"time"

	"github.com/skein-p2p/skein/sim/report"
)

// A metric of your own: register it once (an init function of your
// program, or sim/report itself for `skein sim`), and every finished
// Result carries it in Metrics, summary.txt, deliveries.json and the
// sweep table.
func ExampleRegisterMetric() {
	report.RegisterMetric("example_slow_fraction", func(r *report.Result) float64 {
		if len(r.Deliveries) == 0 {
			return 0
		}
		slow := 0
		for _, d := range r.Deliveries {
			if d.Latency() > 100*time.Millisecond {
				slow++
			}
		}
		return float64(slow) / float64(len(r.Deliveries))
	})

	r := &report.Result{Scenario: "demo", Nodes: 3, Expected: 2,
		Sends: []report.Send{{Seq: 0, From: "n0000", Members: 3}},
		Deliveries: []report.Delivery{
			{Seq: 0, From: "n0000", To: "n0001", Delivered: 20 * time.Millisecond},
			{Seq: 0, From: "n0000", To: "n0002", Delivered: 300 * time.Millisecond},
		}}
	r.Finish()
	fmt.Println(r.Metrics["example_slow_fraction"], r.Metrics["delivered_fraction"])
	// Output: 0.5 1
}
