// Package virtual runs sim experiments on a virtual clock: the fake clock
// of a testing/synctest bubble, which jumps ahead whenever every goroutine
// of the simulation is blocked. Link latencies (plugins/simnet), the
// replicators' intervals (anti-entropy, re-exchange, fetch timeouts) and
// the scenario's timeline then take no wall time, so a run bound by a 10 s
// anti-entropy period converges in as much wall time as its CPU work
// takes, and its delivery times are simulated times: link delays and
// protocol intervals, with CPU work taking none.
//
// From the command line: skein sim run --clock virtual (which uses Main),
// or through go test:
//
//	SKEIN_SIM_SCENARIO=$PWD/examples/sim/suite-order-clock.yaml SKEIN_SIM_OUT=$PWD/sim-out/virtual \
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
	"os"
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
	opts.Clock = Clock
	synctest.Test(t, func(t *testing.T) {
		// The context is made in the bubble: a deadline timer made
		// outside would run on the wall clock.
		res, err = experiment.Run(context.Background(), s, opts)
	})
	return res, err
}

// Main runs f in a synctest bubble from a program that is not a test (a
// command such as skein sim run --clock virtual) and exits the process
// with f's code; it does not return. f gets a context made in the bubble:
// pass Clock in experiment.Options so the results say which clock they
// are on.
//
// A bubble needs a *testing.T, which only a running test has: Main runs
// one through testing.Main, which the testing package keeps "for other
// systems that simulate go test". It clears the command line first (the
// testing package would parse it as test flags), and it must not be
// called from a test (use Run): it panics then.
func Main(f func(ctx context.Context) int) {
	if testing.Testing() {
		panic("virtual.Main called from a test: use virtual.Run")
	}
	os.Args = os.Args[:1]
	testing.Main(func(string, string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: "SkeinVirtualClock", F: func(t *testing.T) {
			code := 0
			synctest.Test(t, func(*testing.T) { code = f(context.Background()) })
			// Exit here, not through testing.Main, which would print
			// PASS on stdout.
			os.Exit(code)
		}}}, nil, nil)
	os.Exit(2) // not reached: the test exits
}
