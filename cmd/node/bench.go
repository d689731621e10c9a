package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/internal/bench"
)

func (c *cli) benchCommand() *cobra.Command {
	var (
		quick             bool
		scenarios, modes  string
		runs              int
		out, profile, dir string
		keep              bool
		sizes             bench.Sizes
		catchUp           []int
		senders           []int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the node (append, catch-up, latency, bursts, cold open, bytes per message) and write a report",
		Long: `bench runs the scenarios of issue 14 on real nodes: ` + "`skein run`" + ` children of
this binary, their store and network plugins linked in and out of process,
two nodes over loopback TCP, 200-byte messages through the client API:

  a  append on one node: messages/s with 1 and 16 senders, peak RSS, CPU
  b  catch-up of 1,000 and 10,000 entries by a node that was offline
  c  live latency, send -> the other node's subscriber: p50, p99 of 500
  d  bursts of 1,000 on a connection under 3 s old, 20 runs: missing after 2 s
  e  cold open of a 100,000-entry log; idle RSS of a node with its plugins
  f  bytes on the wire and CPU per message at each end, 200 at chat pace

Every figure is the median of --runs runs, beside its target and beside a
limit measured in the same run (Ed25519 sign/verify per core, pebble synced
puts, a libp2p stream round trip). The report (OUT.md and OUT.json) names
the machine, Go and module versions, the commit, and the load average before
and after each scenario. --profile DIR keeps a CPU profile of the node under
test per scenario and lists what bounds it. A full run takes about half an
hour; --quick runs tiny sizes in a minute or two (a smoke test, not figures
to compare). docs/performance.md has the latest report.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: the skein binary: %w", err)
			}
			cfg := bench.Config{
				Binary: bin, Dir: dir, Keep: keep, Runs: runs, Quick: quick, ProfileDir: profile,
				Progress: c.stderr, TTY: isTerminal(c.stderr),
			}
			if scenarios != "" {
				cfg.Scenarios = splitList(scenarios)
			}
			if modes != "" {
				cfg.Modes = splitList(modes)
			}
			if !cmd.Flags().Changed("runs") && quick {
				cfg.Runs = 1
			}
			cfg.Sizes = bench.FullSizes
			if quick {
				cfg.Sizes = bench.QuickSizes
			}
			set := func(flag string, dst *int, v int) {
				if cmd.Flags().Changed(flag) {
					*dst = v
				}
			}
			set("append-n", &cfg.Sizes.Append, sizes.Append)
			set("latency-n", &cfg.Sizes.Latency, sizes.Latency)
			set("burst-n", &cfg.Sizes.Burst, sizes.Burst)
			set("burst-runs", &cfg.Sizes.BurstRuns, sizes.BurstRuns)
			set("cold-n", &cfg.Sizes.Cold, sizes.Cold)
			set("chat-n", &cfg.Sizes.Chat, sizes.Chat)
			if cmd.Flags().Changed("chat-pace") {
				cfg.Sizes.ChatPace = sizes.ChatPace
			}
			set("payload", &cfg.Sizes.Payload, sizes.Payload)
			if cmd.Flags().Changed("catchup-n") {
				cfg.Sizes.CatchUp = catchUp
			}
			if cmd.Flags().Changed("senders") {
				cfg.Sizes.Senders = senders
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r, err := bench.Run(ctx, cfg)
			if r == nil {
				return err
			}
			md, js := out+".md", out+".json"
			werr := writeReport(md, js, r)
			if werr != nil {
				return werr
			}
			fmt.Fprintf(c.stdout, "report: %s, %s\n", md, js)
			if err != nil {
				return err
			}
			var failed []string
			for _, s := range r.Scenarios {
				if s.Error != "" {
					failed = append(failed, s.ID+" ("+s.Mode+")")
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("bench: scenario %s failed; the report says why", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&quick, "quick", false, "tiny sizes and one run: a smoke test")
	f.StringVar(&scenarios, "scenarios", "", "scenarios to run, comma-separated (default a,b,c,d,e,f)")
	f.StringVar(&modes, "modes", "", "plugin modes, comma-separated (default linked,process)")
	f.IntVar(&runs, "runs", 3, "runs per figure (the median is reported)")
	f.StringVar(&out, "out", "skein-bench", "report files: OUT.md and OUT.json")
	f.StringVar(&profile, "profile", "", "directory for a CPU profile of the node under test per scenario (the report lists the heaviest functions), and b-MODE.heap.pprof: its heap at the end of the largest catch-up")
	f.StringVar(&dir, "dir", "", "directory for the nodes' data (default: a new temporary directory)")
	f.BoolVar(&keep, "keep", false, "keep the nodes' data directories")
	f.IntVar(&sizes.Append, "append-n", 0, "a: messages appended per sender count (default 10000)")
	f.IntSliceVar(&senders, "senders", nil, "a: concurrent senders (default 1,16)")
	f.IntSliceVar(&catchUp, "catchup-n", nil, "b: entries caught up (default 1000,10000)")
	f.IntVar(&sizes.Latency, "latency-n", 0, "c: messages (default 500)")
	f.IntVar(&sizes.Chat, "chat-n", 0, "f: messages, one per --chat-pace (default 200)")
	f.DurationVar(&sizes.ChatPace, "chat-pace", 0, "f: time between two messages (default 100ms)")
	f.IntVar(&sizes.Burst, "burst-n", 0, "d: messages per burst (default 1000)")
	f.IntVar(&sizes.BurstRuns, "burst-runs", 0, "d: bursts (default 20)")
	f.IntVar(&sizes.Cold, "cold-n", 0, "e: entries of the log opened cold (default 100000)")
	f.IntVar(&sizes.Payload, "payload", 0, "message body in bytes (default 200)")
	return cmd
}

// writeReport writes r as markdown to md and as JSON to js.
func writeReport(md, js string, r *bench.Report) error {
	for _, w := range []struct {
		path  string
		write func(*os.File) error
	}{
		{md, func(f *os.File) error { return r.Markdown(f) }},
		{js, func(f *os.File) error { return r.JSON(f) }},
	} {
		f, err := os.Create(w.path)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		err = w.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bench: write %s: %w", w.path, err)
		}
	}
	return nil
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
