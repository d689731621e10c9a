package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scenario IDs, as issue 14 names them.
var AllScenarios = []string{"a", "b", "c", "d", "e", "f"}

// Sizes are the sizes of the scenarios.
type Sizes struct {
	// Append is the entries appended by scenario a (per sender count).
	Append int
	// Senders are the concurrent senders of scenario a.
	Senders []int
	// CatchUp are the entries a node that was offline catches up on (b).
	CatchUp []int
	// Latency is the messages of the live-latency scenario (c).
	Latency int
	// Chat is the messages of scenario f, sent one every ChatPace.
	Chat     int
	ChatPace time.Duration
	// Burst is the messages of one burst, BurstRuns the bursts (d).
	Burst, BurstRuns int
	// Cold is the entries of the log opened cold (e).
	Cold int
	// Payload is the message body in bytes.
	Payload int
}

// FullSizes are issue 14's sizes.
var FullSizes = Sizes{Append: 10000, Senders: []int{1, 16}, CatchUp: []int{1000, 10000}, Latency: 500, Chat: 200, ChatPace: 100 * time.Millisecond, Burst: 1000, BurstRuns: 20, Cold: 100000, Payload: 200}

// QuickSizes are a smoke test's.
var QuickSizes = Sizes{Append: 100, Senders: []int{1, 16}, CatchUp: []int{50}, Latency: 30, Chat: 20, ChatPace: 100 * time.Millisecond, Burst: 50, BurstRuns: 2, Cold: 200, Payload: 200}

// Config configures Run.
type Config struct {
	// Binary is the skein binary the nodes under test run (`skein run`).
	Binary string
	// Dir holds the nodes' data directories (removed after, unless Keep).
	Dir  string
	Keep bool
	// Scenarios to run (default AllScenarios), Modes (default linked
	// and process).
	Scenarios []string
	Modes     []string
	// Runs per figure (median reported).
	Runs  int
	Quick bool
	Sizes Sizes
	// ProfileDir, when set, receives a CPU profile of the node under test
	// for each scenario and mode, and the report lists its heaviest
	// functions.
	ProfileDir string
	// Progress receives a progress line (nil: none). A terminal gets one
	// line rewritten in place; anything else a line per step.
	Progress io.Writer
	TTY      bool
}

// Run measures the scenarios and returns the report. A scenario that
// fails is reported with its error; Run goes on with the next.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Binary == "" {
		return nil, errors.New("bench: no skein binary")
	}
	if cfg.Runs < 1 {
		cfg.Runs = 1
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = AllScenarios
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return nil, fmt.Errorf("bench: no scenario %q (have %s)", s, strings.Join(AllScenarios, ", "))
		}
	}
	if len(cfg.Modes) == 0 {
		cfg.Modes = []string{ModeLinked, ModeProcess}
	}
	for _, m := range cfg.Modes {
		if m != ModeLinked && m != ModeProcess {
			return nil, fmt.Errorf("bench: no mode %q (have linked, process)", m)
		}
	}
	if cfg.Sizes.Payload == 0 {
		cfg.Sizes = FullSizes
		if cfg.Quick {
			cfg.Sizes = QuickSizes
		}
	}
	if cfg.Sizes.Payload < 16 {
		return nil, fmt.Errorf("bench: payload of %d bytes: at least 16", cfg.Sizes.Payload)
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "skein-bench-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	}
	if !cfg.Keep {
		defer os.RemoveAll(cfg.Dir)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	b := &bench{cfg: cfg, progress: &progress{w: cfg.Progress, tty: cfg.TTY}}
	defer b.progress.done()
	r := &Report{Started: time.Now(), Machine: machine(), Runs: cfg.Runs, Quick: cfg.Quick}
	r.Commit, r.GoVersion, r.Modules = buildInfo()
	if r.Commit == "unknown" {
		if out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=40").Output(); err == nil {
			r.Commit = strings.TrimSpace(string(out))
		}
	}
	b.progress.set("measuring limits (Ed25519, pebble, libp2p)")
	limits, err := measureLimits(ctx, cfg.Dir, cfg.Quick)
	if err != nil {
		return nil, err
	}
	r.Limits = limits
	b.limits = map[string]float64{}
	for _, l := range limits {
		b.limits[l.Name] = l.Value
	}
	r.Notes = append(r.Notes,
		"Every node is a `skein run` child of the bench (its plugins its children in process mode), driven through the client API on its unix socket; two nodes talk over loopback TCP only.",
		"RSS and CPU are summed over the node's process and its plugin processes (/proc); peak RSS is sampled every 50 ms. Plugin processes re-execute the skein binary, so summed RSS counts its resident pages once per process; \"the skein binary counted once\" is the anonymous memory of every process plus the largest file-backed resident share of one (/proc/PID/smaps_rollup), sampled the same way.",
		"Wire bytes are TCP payload bytes of the nodes' connections (ss bytes_sent/bytes_received: Noise, yamux, gossipsub and all), divided by the messages; stream bytes are what the network plugin counts above Noise and yamux (skein_transport_*_bytes_total).",
		"Profiles (--profile) are of the node process only: in process mode the plugins' CPU is not in them.",
		"Catch-up (b) counts the blocks the offline node fetched by source (skein_blocks_fetched_total): bulk (/skein/entries/1), inline (in announcements) or network (bitswap, one by one).",
	)
	for _, id := range cfg.Scenarios {
		for _, mode := range cfg.Modes {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			s := Scenario{ID: id, Name: scenarioNames[id], Mode: mode, LoadBefore: loadAvg()}
			b.progress.set(fmt.Sprintf("%s (%s): starting", id, mode))
			err := b.run(ctx, id, mode, &s)
			s.LoadAfter = loadAvg()
			if err != nil {
				s.Error = err.Error()
			}
			r.Scenarios = append(r.Scenarios, s)
		}
	}
	r.Duration = time.Since(r.Started).Seconds()
	return r, nil
}

var scenarioNames = map[string]string{
	"a": "append through the client API on one node",
	"b": "catch-up by a node that was offline",
	"c": "live latency, send → the other node's subscriber",
	"d": "bursts on a fresh connection",
	"e": "cold open and idle memory",
	"f": "bytes on the wire and CPU per message",
}

type bench struct {
	cfg      Config
	limits   map[string]float64
	progress *progress
	// coldDir is the data directory holding the log scenario e opens,
	// filled once.
	coldDir   string
	coldGroup string
}

func (b *bench) run(ctx context.Context, id, mode string, s *Scenario) error {
	switch id {
	case "a":
		return b.appendScenario(ctx, mode, s)
	case "b":
		return b.catchUpScenario(ctx, mode, s)
	case "c", "f":
		return b.latencyScenario(ctx, mode, s, id)
	case "d":
		return b.burstScenario(ctx, mode, s)
	case "e":
		return b.coldScenario(ctx, mode, s)
	}
	return fmt.Errorf("no scenario %s", id)
}

// dir returns a fresh directory for one run.
func (b *bench) dir(name string) (string, error) {
	return os.MkdirTemp(b.cfg.Dir, name+"-")
}

// profilePath is where the profile of scenario id in mode goes ("" when
// profiles are off).
func (b *bench) profilePath(id, mode string) string {
	if b.cfg.ProfileDir == "" {
		return ""
	}
	return filepath.Join(b.cfg.ProfileDir, fmt.Sprintf("%s-%s.cpu.pprof", id, mode))
}

// heapPath is where the heap profile of scenario id in mode goes ("" when
// profiles are off).
func (b *bench) heapPath(id, mode string) string {
	if b.cfg.ProfileDir == "" {
		return ""
	}
	return filepath.Join(b.cfg.ProfileDir, fmt.Sprintf("%s-%s.heap.pprof", id, mode))
}

// figure builds a figure from runs: the median, checked against tgt (nil:
// none), compared to the limit named limit whose value in the figure's
// unit is limitValue (0: no limit): figure/limit for rates (isRate),
// limit/figure for times, so 1 is as good as the limit allows.
func (b *bench) figure(name, unit string, runs []float64, tgt *target, limit string, limitValue float64, isRate bool) Figure {
	f := Figure{Name: name, Unit: unit, Runs: finite(runs), Value: median(finite(runs))}
	if len(f.Runs) == 0 {
		f.Value = 0
		return f
	}
	if tgt != nil {
		f.Target = tgt.String()
		met := tgt.met(f.Value)
		f.Met = &met
	}
	if limit != "" && limitValue > 0 && f.Value > 0 && limitValue < 1e300 {
		f.Limit = limit
		if isRate {
			f.Fraction = f.Value / limitValue
		} else {
			f.Fraction = limitValue / f.Value
		}
	}
	return f
}

// perOp is the time of one operation, in µs, at rate per second.
func perOp(rate float64) float64 {
	if rate <= 0 {
		return 0
	}
	return 1e6 / rate
}

func finite(vs []float64) []float64 {
	out := make([]float64, 0, len(vs))
	for _, v := range vs {
		if v == v && v < 1e300 && v > -1e300 {
			out = append(out, v)
		}
	}
	return out
}

// progress shows what the bench is doing on stderr.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	last string
	at   time.Time
}

// set shows msg: on a terminal rewriting the line (at most every 200 ms
// for counts), elsewhere one line per message.
func (p *progress) set(msg string) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K[skein bench] %s", msg)
	} else if msg != p.last {
		fmt.Fprintf(p.w, "[skein bench] %s\n", msg)
	}
	p.last = msg
}

// count shows a running count, throttled.
func (p *progress) count(prefix string, n, total int) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	every := 5 * time.Second // a line per step in a log
	if p.tty {
		every = 200 * time.Millisecond
	}
	show := time.Since(p.at) > every || (p.tty && n == total)
	if show {
		p.at = time.Now()
	}
	p.mu.Unlock()
	if show {
		p.set(fmt.Sprintf("%s %d/%d", prefix, n, total))
	}
}

func (p *progress) done() {
	if p != nil && p.w != nil && p.tty {
		fmt.Fprintln(p.w)
	}
}
