// Package experiment runs a scenario (package sim/scenario) on a
// simulated cluster (package sim) and measures it into a report.Result:
// every delivery with its send and receive times, per-node bytes and
// counters, convergence, time and memory. `skein sim run` is a thin
// command around Run.
//
// A run has two phases. Setup builds the nodes over plugins/simnet, sets
// the link model of every connected pair, and forms the groups (each
// member joins through an invitation) until they are settled. The
// timeline then starts (t = 0): sends, churn, partitions and heals happen
// at their planned times, and the run waits until every member that is
// up holds every message of its groups, or the settle timeout.
//
// What is deterministic: the plan (which node sends which body when,
// which nodes churn, the partitions), the link model, the seeded loss and
// jitter draws of each link, and so, once a run has settled, the set of
// deliveries. Delivery times are measured on the wall clock of a shared
// machine and vary from run to run.
//
// Usage sketch:
//
//	s, _ := scenario.Load("examples/sim/partition-heal.yaml")
//	res, err := experiment.Run(ctx, s, experiment.Options{Progress: os.Stderr})
//	files, err := report.Write("out", res)
package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sim"
	"github.com/skein-p2p/skein/sim/report"
	"github.com/skein-p2p/skein/sim/scenario"
)

// Options tune a run; the zero value is quiet.
type Options struct {
	// Progress receives the progress bar (usually os.Stderr); nil: none.
	Progress io.Writer
	// Logger receives every node's log; nil discards.
	Logger *slog.Logger
	// Label prefixes the progress bar (default: the scenario's name).
	Label string
	// Clock names the clock the run is on, for the result
	// (report.Result.Clock): "" the wall clock, or "virtual" when the
	// caller runs it in a testing/synctest bubble (package sim/virtual).
	Clock string
}

// SimLink converts a scenario link model to simnet's.
func SimLink(l scenario.Link) simnet.Link {
	return simnet.Link{Latency: l.Latency, Jitter: l.Jitter, Loss: l.Loss, Bandwidth: int64(l.Bandwidth)}
}

// suite returns the scenario's crypto suite.
func suite(s *scenario.Scenario) (crypto.Suite, error) {
	cs, err := crypto.SuiteByName(s.Crypto.Suite)
	if err != nil {
		return nil, fmt.Errorf("crypto.suite: %w", err)
	}
	return cs, nil
}

// groupOptions maps the scenario's log parameters onto core/log options,
// its merge order onto the message logs' order and its crypto suite onto
// the groups' suite.
func groupOptions(s *scenario.Scenario) ([]group.Option, error) {
	// The suite is given even when it is the default: a node of this
	// scenario then refuses a group of another suite (ErrSuiteMismatch)
	// instead of adopting it from the invitation.
	cs, err := suite(s)
	if err != nil {
		return nil, err
	}
	gos := []group.Option{group.WithSuite(cs)}
	if s.Log.Merge != scenario.MergeLamport {
		o, err := log.OrderByName(s.Log.Merge)
		if err != nil {
			return nil, fmt.Errorf("log.merge: %w", err)
		}
		gos = append(gos, group.WithMessageOrder(o))
	}
	var lo []log.Option
	if s.Log.AppendRefs != nil {
		lo = append(lo, log.WithAppendRefs(*s.Log.AppendRefs))
	}
	if s.Log.MaxNext > 0 {
		lo = append(lo, log.WithMaxNext(s.Log.MaxNext))
	}
	if s.Log.JoinParallelism > 0 {
		lo = append(lo, log.WithJoinParallelism(s.Log.JoinParallelism))
	}
	if len(lo) > 0 {
		gos = append(gos, group.WithLogOptions(lo...))
	}
	return gos, nil
}

// replicationOptions maps the scenario's replication intervals and crypto
// suite onto the replicators' options (anti_entropy goes to
// sim.Config.AntiEntropy).
func replicationOptions(s *scenario.Scenario) ([]replication.Option, error) {
	var ro []replication.Option
	r := s.Replication
	if r.Reexchange != nil {
		ro = append(ro, replication.WithReexchange(*r.Reexchange...))
	}
	if r.BulkRetry > 0 {
		ro = append(ro, replication.WithBulkRetryAfter(r.BulkRetry))
	}
	if r.FetchTimeout > 0 {
		ro = append(ro, replication.WithFetchTimeout(r.FetchTimeout))
	}
	if r.RequestTimeout > 0 {
		ro = append(ro, replication.WithRequestTimeout(r.RequestTimeout))
	}
	if s.Crypto.Suite != scenario.SuiteDefault {
		cs, err := suite(s)
		if err != nil {
			return nil, err
		}
		ro = append(ro, replication.WithSuite(cs))
	}
	return ro, nil
}

// Run runs the scenario once and returns what it measured. An error means
// the run could not be carried out (setup failed, ctx ended); a run that
// did not settle is a Result with Settled false.
func Run(ctx context.Context, s *scenario.Scenario, opts Options) (*report.Result, error) {
	plan, err := s.Plan()
	if err != nil {
		return nil, err
	}
	label := opts.Label
	if label == "" {
		label = s.Name
	}
	resetPeakRSS()
	mem := startMemWatch()
	defer mem.stop()

	gopts, err := groupOptions(s)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", s.Name, err)
	}
	ropts, err := replicationOptions(s)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", s.Name, err)
	}
	setupStart := time.Now()
	bar := report.NewProgress(opts.Progress, label+" setup", 1000) // per mille of the current phase
	setupCtx, cancelSetup := context.WithTimeout(ctx, s.Run.SetupTimeout)
	defer cancelSetup()
	c, err := sim.New(setupCtx, sim.Config{
		Nodes: s.Nodes, Link: SimLink(s.Links.Default), Seed: s.Seed, Degree: s.Degree,
		AntiEntropy: s.Replication.AntiEntropy, GroupOptions: gopts, Replication: ropts, Logger: opts.Logger,
		Progress: func(p sim.Progress) {
			bar.Set(p.Done*1000/max(p.Total, 1), fmt.Sprintf("%s %d/%d", p.Phase, p.Done, p.Total))
		},
	})
	if err != nil {
		bar.Done("failed")
		return nil, fmt.Errorf("sim %s: %w", s.Name, err)
	}
	defer c.Close()
	nodes := c.Nodes()
	setLinks(ctx, c, plan)

	r := newRecorder(plan, nodes)
	groups := make([]*sim.Group, len(plan.Groups))
	for gi, pg := range plan.Groups {
		members := make([]*sim.Node, len(pg.Members))
		for i, m := range pg.Members {
			members[i] = nodes[m]
		}
		g, err := c.NewGroup(setupCtx, members)
		if err != nil {
			bar.Done("failed")
			return nil, fmt.Errorf("sim %s: group %s: %w", s.Name, pg.Name, err)
		}
		groups[gi] = g
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	for gi, g := range groups {
		for _, m := range plan.Groups[gi].Members {
			if err := r.follow(runCtx, gi, g.Ref, m, nodes[m]); err != nil {
				bar.Done("failed")
				return nil, fmt.Errorf("sim %s: %w", s.Name, err)
			}
		}
	}
	bar.Done(fmt.Sprintf("%d nodes, %d groups formed", len(nodes), len(groups)))
	setup := time.Since(setupStart)

	// The timeline.
	bar = report.NewProgress(opts.Progress, label+" run", len(plan.Events)+1)
	t0 := time.Now()
	r.start(t0)
	var sends sync.WaitGroup
	var sendErrs []error
	var sendMu sync.Mutex
	for i, ev := range plan.Events {
		if !sleepUntil(ctx, t0.Add(ev.At)) {
			return nil, fmt.Errorf("sim %s: %w", s.Name, ctx.Err())
		}
		switch ev.Kind {
		case scenario.EventSend:
			body := scenario.Body(s.Seed, ev.Seq, ev.Size)
			g, from := groups[ev.Group], nodes[ev.Node]
			r.sent(ev, len(body))
			sends.Go(func() {
				if _, err := g.Send(runCtx, from, body); err != nil {
					sendMu.Lock()
					sendErrs = append(sendErrs, fmt.Errorf("send %d from %s: %w", ev.Seq, from.ID, err))
					sendMu.Unlock()
				}
			})
		case scenario.EventOffline:
			r.setUp(ev.Node, false)
			r.mark("offline", nodes[ev.Node].ID)
			_ = nodes[ev.Node].Net.Stop(ctx)
		case scenario.EventOnline:
			r.setUp(ev.Node, true)
			r.mark("online", nodes[ev.Node].ID)
			_ = nodes[ev.Node].Net.Start(ctx)
		case scenario.EventPartition:
			sides := make([][]string, len(ev.Sides))
			for j, side := range ev.Sides {
				for _, n := range side {
					sides[j] = append(sides[j], nodes[n].ID)
				}
			}
			r.mark("partition", "")
			c.Network().Partition(sides...)
		case scenario.EventHeal:
			r.mark("heal", "")
			c.Network().Heal()
		}
		bar.Set(i+1, fmt.Sprintf("t=%s %s, %d deliveries", ev.At.Round(time.Millisecond), ev.Kind, r.count()))
	}
	sends.Wait()

	settleCtx, cancelSettle := context.WithTimeout(ctx, s.Run.SettleTimeout)
	defer cancelSettle()
	settled := r.waitSettled(settleCtx, func() {
		bar.Set(len(plan.Events), fmt.Sprintf("settling: %d of %d deliveries", r.count(), r.expected()))
	})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("sim %s: %w", s.Name, ctx.Err())
	}
	run := time.Since(t0)
	cancelRun()
	res := r.result()
	res.Scenario, res.Nodes, res.Seed, res.Clock = s.Name, s.Nodes, s.Seed, opts.Clock
	res.Setup, res.Run, res.Settled = setup, run, settled
	res.HeapPeak, res.RSSPeak, res.LoadAvg = mem.peak(), peakRSS(), loadAvg()
	st := c.Network().Stats()
	res.Counters = map[string]uint64{"published": st.Published, "sent": st.Sent, "lost": st.Lost,
		"overflow": st.Overflow, "delivered": st.Delivered, "blocks": st.Blocks, "requests": st.Requests,
		"send_errors": uint64(len(sendErrs))}
	for _, n := range nodes {
		sent, recv := n.Net.Bytes()
		ns := n.Stats()
		res.NodeStats = append(res.NodeStats, report.NodeStat{Node: n.ID, BytesSent: sent, BytesReceived: recv,
			Counters: map[string]uint64{"published": ns.Network.Published, "received": ns.Network.Received,
				"lost": ns.Network.Lost, "fetched": ns.Network.Fetched, "served": ns.Network.Served,
				"requests": ns.Network.Requests, "answered": ns.Network.Answered}})
	}
	res.Finish()
	note := "settled"
	if !settled {
		note = fmt.Sprintf("NOT settled after %s: %d of %d deliveries", s.Run.SettleTimeout, len(res.Deliveries), res.Expected)
	}
	bar.Set(len(plan.Events)+1, note)
	bar.Done(note)
	if err := errors.Join(sendErrs...); err != nil && opts.Logger != nil {
		opts.Logger.Warn("sends failed", "err", err)
	}
	return res, nil
}

// setLinks gives every connected pair whose model differs from the
// default its own link (only connected pairs carry traffic, so a sparse
// graph of 1,000 nodes needs thousands of entries, not a million).
func setLinks(ctx context.Context, c *sim.Cluster, plan *scenario.Plan) {
	if len(plan.PairRules) == 0 && len(plan.RegionLinks) == 0 {
		return
	}
	nodes := c.Nodes()
	idx := make(map[string]int, len(nodes))
	for i, n := range nodes {
		idx[n.ID] = i
	}
	def := plan.Scenario.Links.Default
	for i, n := range nodes {
		peers, _ := n.Net.Peers(ctx)
		for _, p := range peers {
			j, ok := idx[p.ID]
			if !ok || j < i {
				continue
			}
			if l := plan.LinkBetween(i, j); l != def {
				c.Network().SetLink(n.ID, p.ID, SimLink(l))
			}
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// memWatch samples the Go heap in use while a run lasts.
type memWatch struct {
	mu   sync.Mutex
	max  uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func startMemWatch() *memWatch {
	w := &memWatch{done: make(chan struct{})}
	w.sample()
	w.wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				w.sample()
			case <-w.done:
				return
			}
		}
	})
	return w
}

func (w *memWatch) sample() {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	w.mu.Lock()
	w.max = max(w.max, s[0].Value.Uint64())
	w.mu.Unlock()
}

func (w *memWatch) peak() uint64 {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

func (w *memWatch) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

// resetPeakRSS resets the process's peak RSS (Linux: clear_refs 5), so a
// sweep's runs each report their own; elsewhere it does nothing.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set (VmHWM), 0 if unknown.
func peakRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// loadAvg is the first three fields of /proc/loadavg, "" if unknown.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}
