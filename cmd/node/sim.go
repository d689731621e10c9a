package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/sim/experiment"
	"github.com/skein-p2p/skein/sim/report"
	"github.com/skein-p2p/skein/sim/scenario"
	"github.com/skein-p2p/skein/sim/virtual"
)

func (c *cli) simCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run simulated experiments from a scenario file (many nodes in one process)",
		Long: `sim runs experiments on simulated Skein nodes in this process: real
messengers, groups, logs and replication over plugins/simnet, a simulated
network with latency, jitter, loss and bandwidth per link, partitions and
churn. A scenario file (YAML, strict: unknown keys are errors) says what to
run; see docs/experiments.md and examples/sim/.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(c.simRunCommand(), c.simCheckCommand())
	return cmd
}

// simRunOutput is what `skein sim run --json` prints.
type simRunOutput struct {
	Scenario string         `json:"scenario"`
	Out      string         `json:"out"`
	Sweep    string         `json:"sweep,omitempty"`
	Runs     []simRunRecord `json:"runs"`
	Files    []string       `json:"files,omitempty"`
}

type simRunRecord struct {
	Value   string             `json:"value,omitempty"`
	Nodes   int                `json:"nodes"`
	Settled bool               `json:"settled"`
	LoadAvg string             `json:"loadavg"`
	Metrics map[string]float64 `json:"metrics"`
	Files   []string           `json:"files"`
}

func (c *cli) simRunCommand() *cobra.Command {
	var out, sweep, cpuProfile, memProfile string
	var asJSON, quiet bool
	var clock string
	cmd := &cobra.Command{
		Use:   "run scenario.yaml",
		Short: "Run a scenario and write every delivery (CSV, JSON) and plots (PNG, SVG)",
		Long: `run builds the scenario's nodes and groups, plays its timeline (sends,
churn, partitions, heals) and waits until every member that is up holds
every message, or run.settle_timeout. It writes into --out:

  deliveries.csv, deliveries.json   every delivery: message, sender, receiver, sent, delivered
  summary.txt                       latency quantiles, convergence, time, memory, load average
  latency-cdf.{png,svg}             delivery-latency CDF
  spread.{png,svg}                  fraction of members holding each message over time

--sweep key=v1,v2,... runs the scenario once per value of a dotted key
(nodes=10,100,1000 or links.default.loss=0,0.1,0.3), each run in
<out>/<key>=<value>/, and adds sweep.csv, sweep.json, convergence-vs-n,
bytes-vs-n (-vs-<key> for another key) and latency-cdf plots of all runs
in <out>.

A progress bar shows on stderr (--quiet hides it).

--clock virtual runs on a virtual clock (sim/virtual: testing/synctest's
fake clock): link delays and replication intervals take no wall time, and
every time reported is simulated (CPU work takes none). Without it times
are on the wall clock. See docs/experiments.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch clock {
			case "wall":
			case virtual.Clock:
				if testing.Testing() {
					return errors.New("--clock virtual: not from inside a test (use sim/virtual.Run)")
				}
			default:
				return fmt.Errorf("--clock %q: use wall or virtual", clock)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			if clock == virtual.Clock {
				// The run goes into a bubble, with a context of the
				// bubble's (one made out here would wait on the wall
				// clock); Main exits the process when it is done. An
				// interrupt then ends the process as by default.
				stop()
				virtual.Main(func(ctx context.Context) int {
					err := c.scenarioError(c.simRun(ctx, args[0], out, sweep, asJSON, quiet, virtual.Clock))
					if cpuProfile != "" {
						pprof.StopCPUProfile()
					}
					if memProfile != "" {
						if perr := writeHeapProfile(memProfile); perr != nil && err == nil {
							err = perr
						}
					}
					if err != nil {
						printError(c.stderr, err)
						return exitCode(err)
					}
					return 0
				})
			}
			err := c.scenarioError(c.simRun(ctx, args[0], out, sweep, asJSON, quiet, ""))
			if memProfile != "" {
				if perr := writeHeapProfile(memProfile); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (default sim-out/<scenario name>)")
	cmd.Flags().StringVar(&sweep, "sweep", "", "run once per value of a key: key=v1,v2,... (e.g. nodes=10,100,1000)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the runs' metrics and files as JSON on stdout")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar on stderr")
	cmd.Flags().StringVar(&clock, "clock", "wall", "wall, or virtual: simulated time (testing/synctest's fake clock); see docs/experiments.md")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write a heap profile at the end of the run to this file")
	return cmd
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

func (c *cli) simCheckCommand() *cobra.Command {
	var sweep string
	cmd := &cobra.Command{
		Use:   "check scenario.yaml",
		Short: "Check a scenario file and print its plan, without running it",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.scenarioError(c.simCheck(args[0], sweep))
		},
	}
	cmd.Flags().StringVar(&sweep, "sweep", "", "check once per value of a key: key=v1,v2,...")
	return cmd
}

func (c *cli) simCheck(path, sweep string) error {
	key, values, err := parseSweep(sweep)
	if err != nil {
		return err
	}
	for _, v := range values {
		s, err := loadScenario(path, key, v)
		if err != nil {
			return err
		}
		p, err := s.Plan()
		if err != nil {
			return err
		}
		kinds := map[scenario.EventKind]int{}
		for _, ev := range p.Events {
			kinds[ev.Kind]++
		}
		fmt.Fprintf(c.stdout, "%s: %d nodes, %d %s, seed %d; timeline %s: %d sends, %d offline, %d online, %d partitions, %d heals\n",
			s.Name, s.Nodes, len(p.Groups), plural(len(p.Groups), "group", "groups"), s.Seed, p.End.Round(time.Millisecond), kinds[scenario.EventSend], kinds[scenario.EventOffline],
			kinds[scenario.EventOnline], kinds[scenario.EventPartition], kinds[scenario.EventHeal])
	}
	return nil
}

// parseSweep splits "key=v1,v2" ("" gives one run with no override).
func parseSweep(s string) (key string, values []string, err error) {
	if s == "" {
		return "", []string{""}, nil
	}
	key, list, ok := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return "", nil, fmt.Errorf("--sweep %q: expected key=v1,v2,... such as nodes=10,100,1000", s)
	}
	for v := range strings.SplitSeq(list, ",") {
		if v = strings.TrimSpace(v); v != "" {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return "", nil, fmt.Errorf("--sweep %q: no values after %s=", s, key)
	}
	return key, values, nil
}

func loadScenario(path, key, value string) (*scenario.Scenario, error) {
	var ovs []scenario.Override
	if key != "" {
		ovs = append(ovs, scenario.Override{Key: key, Value: value})
	}
	return scenario.Load(path, ovs...)
}

func (c *cli) simRun(ctx context.Context, path, out, sweep string, asJSON, quiet bool, clock string) error {
	key, values, err := parseSweep(sweep)
	if err != nil {
		return err
	}
	// Check every run's scenario before running any.
	scenarios := make([]*scenario.Scenario, len(values))
	for i, v := range values {
		if scenarios[i], err = loadScenario(path, key, v); err != nil {
			return err
		}
		if _, err := scenarios[i].Plan(); err != nil {
			return err
		}
	}
	if out == "" {
		out = filepath.Join("sim-out", scenarios[0].Name)
	}
	progress := c.stderr
	if quiet {
		progress = nil
	}
	result := simRunOutput{Scenario: scenarios[0].Name, Out: out, Sweep: sweep}
	var points []report.SweepPoint
	for i, s := range scenarios {
		dir, label := out, s.Name
		if key != "" {
			dir = filepath.Join(out, key+"="+values[i])
			label = fmt.Sprintf("%s %s=%s (%d/%d)", s.Name, key, values[i], i+1, len(values))
		}
		res, err := experiment.Run(ctx, s, experiment.Options{Progress: progress, Label: label, Clock: clock})
		if err != nil {
			return err
		}
		files, err := report.Write(dir, res)
		if err != nil {
			return err
		}
		result.Runs = append(result.Runs, simRunRecord{Value: values[i], Nodes: res.Nodes, Settled: res.Settled,
			LoadAvg: res.LoadAvg, Metrics: res.Metrics, Files: files})
		points = append(points, report.SweepPoint{Value: values[i], Result: res})
		if !asJSON {
			if key != "" {
				fmt.Fprintf(c.stdout, "== %s=%s\n", key, values[i])
			}
			fmt.Fprint(c.stdout, res.Summary())
			fmt.Fprintf(c.stdout, "wrote %d files to %s\n", len(files), dir)
		}
		if !res.Settled {
			fmt.Fprintf(c.stderr, "warning: %s did not settle within run.settle_timeout (%s)\n", label, s.Run.SettleTimeout)
		}
	}
	if key != "" {
		files, err := report.WriteSweep(out, key, points)
		if err != nil {
			return err
		}
		result.Files = files
		if !asJSON {
			fmt.Fprintf(c.stdout, "sweep over %s: wrote %d files to %s\n", key, len(files), out)
		}
	}
	if asJSON {
		return c.writeJSON(result)
	}
	return nil
}

// scenarioError prints a scenario's problems one per line, as the node
// prints config problems, and exits 1; other errors pass through.
func (c *cli) scenarioError(err error) error {
	var inv *scenario.InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	fmt.Fprintf(c.stderr, "skein: invalid scenario (%d %s):\n", len(inv.Problems), plural(len(inv.Problems), "problem", "problems"))
	for _, p := range inv.Problems {
		fmt.Fprintf(c.stderr, "  %s\n", p.String())
	}
	return silentExit(1)
}
