// Package virtual runs sim experiments on a virtual clock: the fake clock
// of a testing/synctest bubble, which jumps ahead whenever every goroutine
// of the simulation is blocked. Link latencies (plugins/simnet), the
// replicators' intervals (anti-entropy, re-exchange, fetch timeouts) and
// the scenario's timeline then take no wall time, so a run bound by a 10 s
// anti-entropy period converges in as much wall time as its CPU work
// takes, and its delivery times are simulated times: link delays and
// protocol intervals, with CPU work taking none.
//
// A synctest bubble is only available to tests (synctest.Test takes a
// *testing.T), so a virtual run goes through go test:
//
//	SKEIN_SIM_SCENARIO=$PWD/examples/sim/virtual-clock.yaml SKEIN_SIM_OUT=$PWD/sim-out/virtual \
//	    go test -run TestScenarioFile -v ./sim/virtual
//
// or from a test of your own:
//
//	func TestMine(t *testing.T) {
//		s, _ := scenario.Load("mine.yaml")
//		res, err := virtual.Run(t, s, experiment.Options{})
//		...
//	}
//
// What stays on the wall clock: Result.Setup and Result.Run report
// simulated time too (they are measured with time.Now inside the bubble);
// the heap and RSS peaks and the load average are real. Delivery times
// are reproducible up to goroutine scheduling: two runs of one seed
// deliver the same messages to the same members, and usually, not
// always, at the same simulated times.
package virtual

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/skein-p2p/skein/sim/experiment"
	"github.com/skein-p2p/skein/sim/report"
	"github.com/skein-p2p/skein/sim/scenario"
)

// Clock is the name report.Result.Clock takes after a virtual run.
const Clock = "virtual"

// Run runs s once, like experiment.Run, inside a synctest bubble of t
// (see the package comment). Every goroutine of the run must be gone when
// it returns, which experiment.Run's cleanup ensures; t fails if one is
// left (synctest reports it).
func Run(t *testing.T, s *scenario.Scenario, opts experiment.Options) (*report.Result, error) {
	t.Helper()
	var (
		res *report.Result
		err error
	)
	synctest.Test(t, func(t *testing.T) {
		// The context is made in the bubble: a deadline timer made
		// outside would run on the wall clock.
		res, err = experiment.Run(context.Background(), s, opts)
	})
	if res != nil {
		res.Clock = Clock
	}
	return res, err
}
