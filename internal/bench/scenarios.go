package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
)

const mib = 1 << 20

// body is message i of a run: its tag, then padding to size bytes.
func body(tag string, i, size int) []byte {
	b := make([]byte, size)
	n := copy(b, fmt.Sprintf("%s-%08d-", tag, i))
	for j := n; j < size; j++ {
		b[j] = 'x'
	}
	return b
}

// msgIndex reads i back from a body of tag (-1 if not one of tag's).
func msgIndex(tag string, b []byte) int {
	rest, ok := strings.CutPrefix(string(b[:min(len(b), len(tag)+10)]), tag+"-")
	if !ok || len(rest) < 8 {
		return -1
	}
	i, err := strconv.Atoi(rest[:8])
	if err != nil {
		return -1
	}
	return i
}

// sendN sends n messages of tag to group through cl with senders
// concurrent callers, each waiting for its acknowledgement, and returns
// how long all took.
func sendN(ctx context.Context, cl *client.Client, group, tag string, n, senders, size int, p *progress, what string) (time.Duration, error) {
	var next, acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	t0 := time.Now()
	for range senders {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if _, err := cl.Messages.Send(ctx, &apiv1.SendRequest{Group: group, Body: body(tag, i, size)}); err != nil {
					errs <- fmt.Errorf("send %d: %w", i, err)
					return
				}
				p.count(what, int(acked.Add(1)), n)
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return took, err
	}
	return took, ctx.Err()
}

// streamN sends n messages of tag to group through one client.Sender
// (Messages.SendStream, apiv1.MaxSendsInFlight in flight) and returns how
// long until the last was acknowledged.
func streamN(ctx context.Context, cl *client.Client, group, tag string, n, size int, p *progress, what string) (time.Duration, error) {
	t0 := time.Now()
	s, err := cl.NewSender(ctx)
	if err != nil {
		return 0, err
	}
	pending := make(chan *client.PendingSend, apiv1.MaxSendsInFlight)
	acked := make(chan error, 1)
	go func() {
		i := 0
		for ps := range pending {
			if _, err := ps.Wait(ctx); err != nil {
				acked <- fmt.Errorf("streamed send %d: %w", i, err)
				for range pending {
				}
				return
			}
			i++
			p.count(what, i, n)
		}
		acked <- nil
	}()
	var sendErr error
	for i := range n {
		ps, err := s.Send(ctx, group, body(tag, i, size))
		if err != nil {
			sendErr = fmt.Errorf("streamed send %d: %w", i, err)
			break
		}
		pending <- ps
	}
	close(pending)
	ackErr := <-acked
	took := time.Since(t0)
	closeErr := s.Close(ctx)
	return took, errors.Join(sendErr, ackErr, closeErr)
}

// a. Appends through the client API of one node, with 1 and 16 senders.
func (b *bench) appendScenario(ctx context.Context, mode string, s *Scenario) error {
	sz := b.cfg.Sizes
	rates := map[int][]float64{}
	var peaks, cpus, streamed []float64
	for run := range b.cfg.Runs {
		dir, err := b.dir("a")
		if err != nil {
			return err
		}
		if err := initAgent(ctx, b.cfg.Binary, dir); err != nil {
			return err
		}
		ag, err := startAgent(ctx, b.cfg.Binary, dir, mode)
		if err != nil {
			return err
		}
		err = func() error {
			defer ag.stop()
			g, err := ag.cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "bench"})
			if err != nil {
				return err
			}
			peak := samplePeak(ag.pid())
			cpu0 := treeUsage(ag.pid()).CPU
			total := 0
			for _, senders := range sz.Senders {
				var prof *cpuProfile
				if run == 0 && senders == sz.Senders[len(sz.Senders)-1] {
					prof = startProfile(ctx, ag, estimate(sz.Append, 1000), b.profilePath("a", mode))
				}
				what := fmt.Sprintf("a (%s) run %d/%d: %d sender(s)", mode, run+1, b.cfg.Runs, senders)
				took, err := sendN(ctx, ag.cl, g.GetId(), fmt.Sprintf("a%d", senders), sz.Append, senders, sz.Payload, b.progress, what)
				if err != nil {
					peak.stop()
					return err
				}
				total += sz.Append
				rates[senders] = append(rates[senders], float64(sz.Append)/took.Seconds())
				if prof != nil {
					top, err := prof.wait()
					s.Profile, s.Top = prof.path, top
					if err != nil {
						s.Top = append(s.Top, "profile: "+err.Error())
					}
				}
			}
			// One client again, its sends pipelined over one stream.
			what := fmt.Sprintf("a (%s) run %d/%d: 1 client, streamed", mode, run+1, b.cfg.Runs)
			took, err := streamN(ctx, ag.cl, g.GetId(), "as", sz.Append, sz.Payload, b.progress, what)
			if err != nil {
				peak.stop()
				return err
			}
			total += sz.Append
			streamed = append(streamed, float64(sz.Append)/took.Seconds())
			peaks = append(peaks, float64(peak.stop().RSS)/mib)
			cpus = append(cpus, float64((treeUsage(ag.pid()).CPU-cpu0).Microseconds())/float64(total))
			return nil
		}()
		if err != nil {
			return err
		}
	}
	for _, senders := range sz.Senders {
		var tgt *target
		switch {
		case senders == 1:
			tgt = &target{atLeast: true, value: 3000}
		case mode == ModeLinked:
			tgt = &target{atLeast: true, value: 30000}
		default:
			tgt = &target{atLeast: true, value: 10000}
		}
		s.Figures = append(s.Figures, b.figure(fmt.Sprintf("%d messages, %d sender(s), acknowledged", sz.Append, senders), "msg/s", rates[senders], tgt, LimitSign, b.limits[LimitSign], true))
		if senders == 1 {
			s.Figures = append(s.Figures, b.figure(fmt.Sprintf("%d messages, 1 client streamed (window %d), acknowledged", sz.Append, apiv1.MaxSendsInFlight), "msg/s", streamed, tgt, LimitSign, b.limits[LimitSign], true))
		}
	}
	s.Figures = append(s.Figures,
		b.figure("peak RSS of the node's processes", "MiB", peaks, nil, "", 0, false),
		b.figure("CPU per message (node and plugins)", "µs", cpus, nil, LimitSign+" (one signature)", perOp(b.limits[LimitSign]), false))
	return nil
}

// estimate guesses how long n operations take at perSecond, for a
// profile's length (at least 1 s, at most 30 s).
func estimate(n, perSecond int) time.Duration {
	return min(max(time.Duration(n)*time.Second/time.Duration(perSecond), time.Second), 30*time.Second)
}

// b. Catch-up of N entries by a node that was offline.
func (b *bench) catchUpScenario(ctx context.Context, mode string, s *Scenario) error {
	sz := b.cfg.Sizes
	for _, n := range sz.CatchUp {
		var times, peaks, onces, heaps, cpus []float64
		sources := map[string][]float64{}
		for run := range b.cfg.Runs {
			dir, err := b.dir("b")
			if err != nil {
				return err
			}
			p, err := newPair(ctx, b.cfg.Binary, dir, mode)
			if err != nil {
				return err
			}
			err = func() error {
				defer p.close()
				if err := p.b.stop(); err != nil {
					return err
				}
				what := fmt.Sprintf("b (%s) run %d/%d: writing %d while the peer is offline", mode, run+1, b.cfg.Runs, n)
				if _, err := sendN(ctx, p.a.cl, p.group, "b", n, 16, sz.Payload, b.progress, what); err != nil {
					return err
				}
				nb, err := startAgent(ctx, b.cfg.Binary, p.b.dir, mode)
				if err != nil {
					return err
				}
				p.b = nb
				peak := samplePeak(nb.pid())
				cpu0 := treeUsage(nb.pid()).CPU
				var prof *cpuProfile
				if run == 0 && n == sz.CatchUp[len(sz.CatchUp)-1] {
					prof = startProfile(ctx, nb, estimate(n, 1000), b.profilePath("b", mode))
				}
				sctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stream, err := nb.cl.Messages.Subscribe(sctx, &apiv1.SubscribeRequest{Group: p.group, Replay: true})
				if err != nil {
					peak.stop()
					return err
				}
				t0 := time.Now()
				if err := nb.connect(ctx, p.a); err != nil {
					peak.stop()
					return err
				}
				got := map[int]bool{}
				timeout := time.AfterFunc(max(120*time.Second, time.Duration(n)*20*time.Millisecond), cancel)
				defer timeout.Stop()
				for len(got) < n {
					m, err := stream.Recv()
					if err != nil {
						peak.stop()
						return fmt.Errorf("catch-up of %d: %d received after %s: %w", n, len(got), time.Since(t0).Round(time.Millisecond), err)
					}
					if i := msgIndex("b", m.GetBody()); i >= 0 {
						got[i] = true
					}
					b.progress.count(fmt.Sprintf("b (%s) run %d/%d: catching up", mode, run+1, b.cfg.Runs), len(got), n)
				}
				times = append(times, time.Since(t0).Seconds())
				pk := peak.stop()
				peaks = append(peaks, float64(pk.RSS)/mib)
				onces = append(onces, float64(pk.Once)/mib)
				if run == 0 && n == sz.CatchUp[len(sz.CatchUp)-1] {
					if inuse, err := fetchHeap(ctx, nb, b.heapPath("b", mode)); err == nil {
						heaps = append(heaps, float64(inuse)/mib)
					} else if b.heapPath("b", mode) != "" {
						s.Top = append(s.Top, "heap profile: "+err.Error())
					}
				}
				cpus = append(cpus, float64((treeUsage(nb.pid()).CPU-cpu0).Microseconds())/float64(n))
				// Where the entries came from (core/metrics).
				if m, err := nb.metrics(ctx); err == nil {
					for _, src := range []string{"inline", "bulk", "network"} {
						sources[src] = append(sources[src], m[`skein_blocks_fetched_total{source="`+src+`"}`])
					}
				}
				if prof != nil {
					top, err := prof.wait()
					s.Profile, s.Top = prof.path, top
					if err != nil {
						s.Top = append(s.Top, "profile: "+err.Error())
					}
				}
				return nil
			}()
			if err != nil {
				return err
			}
		}
		var tgtTime, tgtRSS *target
		if n >= 10000 {
			tgtTime, tgtRSS = &target{value: 1}, &target{value: 100}
		}
		// The limit: verifying n signatures on every core.
		verifyAll := float64(n) / (b.limits[LimitVerify] * float64(cores()))
		f := b.figure(fmt.Sprintf("catch-up of %d, from connect", n), "s", times, tgtTime, "", 0, false)
		if verifyAll > 0 && f.Value > 0 {
			f.Limit, f.Fraction = fmt.Sprintf("%s of %d on %d cores (%.3g s)", LimitVerify, n, cores(), verifyAll), verifyAll/f.Value
		}
		s.Figures = append(s.Figures, f,
			b.figure(fmt.Sprintf("catch-up of %d: peak memory of the node's processes, the skein binary counted once", n), "MiB", onces, tgtRSS, "", 0, false),
			b.figure(fmt.Sprintf("catch-up of %d: peak RSS of the node's processes, summed (the binary once per process)", n), "MiB", peaks, nil, "", 0, false),
			b.figure(fmt.Sprintf("catch-up of %d: CPU per entry", n), "µs", cpus, nil, LimitVerify+" (one signature)", perOp(b.limits[LimitVerify]), false))
		if len(heaps) > 0 {
			s.Figures = append(s.Figures, b.figure(fmt.Sprintf("catch-up of %d: live Go heap of the node process at the end (heap profile, last GC; first run)", n), "MiB", heaps, nil, "", 0, false))
		}
		for _, src := range []string{"inline", "bulk", "network"} {
			if len(sources[src]) > 0 {
				s.Figures = append(s.Figures, b.figure(fmt.Sprintf("catch-up of %d: blocks fetched %s", n, src), "blocks", sources[src], nil, "", 0, false))
			}
		}
	}
	return nil
}

// c and f. Live latency, send → the other node's subscriber, one message
// at a time; f: wire bytes and CPU per message over the same messages.
func (b *bench) latencyScenario(ctx context.Context, mode string, s *Scenario, id string) error {
	sz := b.cfg.Sizes
	count, pace := sz.Latency, time.Duration(0)
	if id == "f" {
		count, pace = sz.Chat, sz.ChatPace
	}
	var p50s, p99s, wires, streams, cpuA, cpuB []float64
	for run := range b.cfg.Runs {
		dir, err := b.dir(id)
		if err != nil {
			return err
		}
		p, err := newPair(ctx, b.cfg.Binary, dir, mode)
		if err != nil {
			return err
		}
		err = func() error {
			defer p.close()
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := p.b.cl.Messages.Subscribe(sctx, &apiv1.SubscribeRequest{Group: p.group})
			if err != nil {
				return err
			}
			if _, err := stream.Header(); err != nil { // registered
				return err
			}
			recv := make(chan int, 64)
			go func() {
				defer close(recv)
				for {
					m, err := stream.Recv()
					if err != nil {
						return
					}
					if i := msgIndex(id, m.GetBody()); i >= 0 {
						recv <- i
					}
				}
			}()
			one := func(i int) (time.Duration, error) {
				t0 := time.Now()
				if _, err := p.a.cl.Messages.Send(ctx, &apiv1.SendRequest{Group: p.group, Body: body(id, i, sz.Payload)}); err != nil {
					return 0, err
				}
				deadline := time.After(10 * time.Second)
				for {
					select {
					case j, ok := <-recv:
						if !ok {
							return 0, errors.New("subscription ended")
						}
						if j == i {
							return time.Since(t0), nil
						}
					case <-deadline:
						return 0, fmt.Errorf("message %d not delivered in 10 s", i)
					}
				}
			}
			// Warm up: the pubsub mesh, the sending chain shared.
			for i := range 10 {
				if _, err := one(i); err != nil {
					return fmt.Errorf("warm-up: %w", err)
				}
			}
			wire0, err := wireBytes(p.a, p.b)
			if err != nil {
				return err
			}
			m0, err := p.a.metrics(ctx)
			if err != nil {
				return err
			}
			ca0, cb0 := treeUsage(p.a.pid()).CPU, treeUsage(p.b.pid()).CPU
			var prof *cpuProfile
			if run == 0 {
				prof = startProfile(ctx, p.b, estimate(count, 300)+time.Duration(count)*pace, b.profilePath(id, mode))
			}
			var lat []float64
			for i := 10; i < 10+count; i++ {
				if pace > 0 {
					select {
					case <-time.After(pace):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				d, err := one(i)
				if err != nil {
					return err
				}
				lat = append(lat, float64(d.Microseconds())/1000)
				b.progress.count(fmt.Sprintf("%s (%s) run %d/%d: messages", id, mode, run+1, b.cfg.Runs), i-9, count)
			}
			ca1, cb1 := treeUsage(p.a.pid()).CPU, treeUsage(p.b.pid()).CPU
			wire1, err := wireBytes(p.a, p.b)
			if err != nil {
				return err
			}
			m1, err := p.a.metrics(ctx)
			if err != nil {
				return err
			}
			n := float64(count)
			p50s = append(p50s, percentile(lat, 50))
			p99s = append(p99s, percentile(lat, 99))
			wires = append(wires, float64(wire1-wire0)/n)
			streamBytes := func(m map[string]float64) float64 {
				return m[`skein_transport_sent_bytes_total{transport="tcp"}`] + m[`skein_transport_received_bytes_total{transport="tcp"}`]
			}
			streams = append(streams, (streamBytes(m1)-streamBytes(m0))/n)
			cpuA = append(cpuA, float64((ca1-ca0).Microseconds())/n)
			cpuB = append(cpuB, float64((cb1-cb0).Microseconds())/n)
			if prof != nil {
				top, err := prof.wait()
				s.Profile, s.Top = prof.path, top
				if err != nil {
					s.Top = append(s.Top, "profile: "+err.Error())
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	rttMs := b.limits[LimitStreamRTT] / 1000
	if id == "c" {
		p50 := &target{value: 1}
		if mode == ModeProcess {
			p50 = &target{value: 2}
		}
		s.Figures = append(s.Figures,
			b.figure(fmt.Sprintf("p50 of %d messages", sz.Latency), "ms", p50s, p50, LimitStreamRTT, rttMs, false),
			b.figure(fmt.Sprintf("p99 of %d messages", sz.Latency), "ms", p99s, &target{value: 10}, LimitStreamRTT, rttMs, false),
			b.figure("CPU per message at the sender (node and plugins)", "µs", cpuA, nil, LimitSign+" (one signature)", perOp(b.limits[LimitSign]), false),
			b.figure("CPU per message at the receiver (node and plugins)", "µs", cpuB, nil, LimitVerify+" (one signature)", perOp(b.limits[LimitVerify]), false))
		return nil
	}
	s.Figures = append(s.Figures,
		b.figure(fmt.Sprintf("wire bytes per message, %d at one per %s (TCP payload, both directions)", count, pace), "B", wires, &target{value: 550}, "", 0, false),
		b.figure("stream bytes per message (above Noise and yamux)", "B", streams, nil, "", 0, false),
		b.figure("CPU per message at the sender (node and plugins)", "µs", cpuA, nil, LimitSign+" (one signature)", perOp(b.limits[LimitSign]), false),
		b.figure("CPU per message at the receiver (node and plugins)", "µs", cpuB, nil, LimitVerify+" (one signature)", perOp(b.limits[LimitVerify]), false))
	return nil
}

var ssBytesRE = regexp.MustCompile(`bytes_(sent|received):(\d+)`)

// wireBytes sums the TCP payload bytes sent and received on the
// connections of the nodes' listening ports, each connection once (libp2p
// dials from its listening port, so both ends of a connection between two
// nodes can match).
func wireBytes(nodes ...*agent) (uint64, error) {
	var total uint64
	seen := map[string]bool{}
	for _, n := range nodes {
		port := tcpPort(n.addr)
		if port == "" {
			return 0, fmt.Errorf("node %s has no TCP address", n.dir)
		}
		out, err := exec.Command("ss", "-tinH", "state", "established", "( sport = :"+port+" )").Output()
		if err != nil {
			return 0, fmt.Errorf("ss: %w", err)
		}
		total += ssTotal(string(out), seen)
	}
	return total, nil
}

// ssTotal sums bytes_sent and bytes_received of the sockets `ss -tinH`
// printed (a line with the addresses, then an indented one with the
// figures), skipping connections already in seen.
func ssTotal(out string, seen map[string]bool) uint64 {
	var total uint64
	skip := true
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			f := strings.Fields(line)
			if len(f) < 4 {
				skip = true
				continue
			}
			local, peer := f[len(f)-2], f[len(f)-1]
			key := min(local, peer) + "|" + max(local, peer)
			skip = seen[key]
			seen[key] = true
			continue
		}
		if skip {
			continue
		}
		for _, m := range ssBytesRE.FindAllStringSubmatch(line, -1) {
			v, _ := strconv.ParseUint(m[2], 10, 64)
			total += v
		}
	}
	return total
}

// tcpPort is the port of a /ip4/.../tcp/PORT/... multiaddr.
func tcpPort(addr string) string {
	f := strings.Split(addr, "/")
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "tcp" {
			return f[i+1]
		}
	}
	return ""
}

// d. Bursts written on a connection under 3 s old: the peer restarts and
// connects, and a burst of messages is written at once; what is missing
// on the peer 2 s after the last write.
func (b *bench) burstScenario(ctx context.Context, mode string, s *Scenario) error {
	sz := b.cfg.Sizes
	dir, err := b.dir("d")
	if err != nil {
		return err
	}
	p, err := newPair(ctx, b.cfg.Binary, dir, mode)
	if err != nil {
		return err
	}
	defer p.close()
	var missing, ages, rates, lags []float64
	for run := range sz.BurstRuns {
		if err := p.b.stop(); err != nil {
			return err
		}
		nb, err := startAgent(ctx, b.cfg.Binary, p.b.dir, mode)
		if err != nil {
			return err
		}
		p.b = nb
		tag := fmt.Sprintf("d%02d", run)
		// When the burst's messages reach b's subscriber.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := nb.cl.Messages.Subscribe(sctx, &apiv1.SubscribeRequest{Group: p.group})
		if err != nil {
			return err
		}
		if _, err := stream.Header(); err != nil {
			return err
		}
		var mu sync.Mutex
		var last time.Time
		arrived := map[int]bool{}
		go func() {
			for {
				m, err := stream.Recv()
				if err != nil {
					return
				}
				if i := msgIndex(tag, m.GetBody()); i >= 0 {
					mu.Lock()
					arrived[i], last = true, time.Now()
					mu.Unlock()
				}
			}
		}()
		if err := nb.connect(ctx, p.a); err != nil {
			return err
		}
		connected := time.Now()
		what := fmt.Sprintf("d (%s) burst %d/%d", mode, run+1, sz.BurstRuns)
		took, err := sendN(ctx, p.a.cl, p.group, tag, sz.Burst, 16, sz.Payload, b.progress, what)
		if err != nil {
			return err
		}
		lastWrite := time.Now()
		ages = append(ages, lastWrite.Sub(connected).Seconds())
		rates = append(rates, float64(sz.Burst)/took.Seconds())
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		list, err := nb.cl.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: p.group, Reverse: true, Limit: uint32(2 * sz.Burst)})
		if err != nil {
			return err
		}
		got := map[int]bool{}
		for _, m := range list.GetMessages() {
			if i := msgIndex(tag, m.GetBody()); i >= 0 {
				got[i] = true
			}
		}
		missing = append(missing, float64(sz.Burst-len(got)))
		mu.Lock()
		if len(arrived) == sz.Burst {
			lags = append(lags, max(0, last.Sub(lastWrite).Seconds()*1000))
		}
		mu.Unlock()
		cancel()
	}
	runsMissing := 0.0
	for _, m := range missing {
		if m > 0 {
			runsMissing++
		}
	}
	f := Figure{Name: fmt.Sprintf("bursts of %d with messages missing 2 s after the last write, of %d", sz.Burst, sz.BurstRuns),
		Value: runsMissing, Unit: "runs", Runs: missing, Target: (&target{value: 0}).String()}
	met := runsMissing == 0
	f.Met = &met
	s.Figures = append(s.Figures, f,
		b.figure("messages missing per burst (median; runs list each burst)", "msg", missing, nil, "", 0, false),
		b.figure("connection age at the last write", "s", ages, nil, "", 0, false),
		b.figure("last message at the peer's subscriber after the last write (bursts complete in 2 s)", "ms", lags, nil, "", 0, false),
		b.figure("burst write rate, 16 senders", "msg/s", rates, nil, "", 0, false))
	return nil
}

// e. Cold open of a node holding a log of Cold entries (filled once,
// linked in), against an empty node, and the idle RSS of an empty node.
func (b *bench) coldScenario(ctx context.Context, mode string, s *Scenario) error {
	sz := b.cfg.Sizes
	if b.coldDir == "" {
		dir, err := b.dir("e-full")
		if err != nil {
			return err
		}
		if err := initAgent(ctx, b.cfg.Binary, dir); err != nil {
			return err
		}
		ag, err := startAgent(ctx, b.cfg.Binary, dir, ModeLinked)
		if err != nil {
			return err
		}
		g, err := ag.cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "bench"})
		if err != nil {
			ag.stop()
			return err
		}
		_, err = sendN(ctx, ag.cl, g.GetId(), "e", sz.Cold, 16, sz.Payload, b.progress, fmt.Sprintf("e: filling a log of %d (once)", sz.Cold))
		if err := errors.Join(err, ag.stop()); err != nil {
			return err
		}
		b.coldDir, b.coldGroup = dir, g.GetId()
	}
	empty, err := b.dir("e-empty")
	if err != nil {
		return err
	}
	if err := initAgent(ctx, b.cfg.Binary, empty); err != nil {
		return err
	}
	var full, bare, list, idle, idleOnce []float64
	for run := range b.cfg.Runs {
		b.progress.set(fmt.Sprintf("e (%s) run %d/%d: cold open", mode, run+1, b.cfg.Runs))
		// An empty node: start-up alone; then idle.
		ag, err := startAgent(ctx, b.cfg.Binary, empty, mode)
		if err != nil {
			return err
		}
		bare = append(bare, ag.ready.Sub(ag.started).Seconds()*1000)
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		m := treeMemory(ag.pid())
		idle = append(idle, float64(m.RSS)/mib)
		idleOnce = append(idleOnce, float64(m.Once)/mib)
		if err := ag.stop(); err != nil {
			return err
		}
		// The node holding the log (its messenger opens it before the
		// API serves), then its newest message listed.
		ag, err = startAgent(ctx, b.cfg.Binary, b.coldDir, mode)
		if err != nil {
			return err
		}
		full = append(full, ag.ready.Sub(ag.started).Seconds()*1000)
		var prof *cpuProfile
		if run == 0 {
			// What listing the newest message costs (the start itself
			// runs before the profile endpoint serves).
			prof = startProfile(ctx, ag, estimate(sz.Cold, 20000), b.profilePath("e", mode))
		}
		t0 := time.Now()
		_, err = ag.cl.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: b.coldGroup, Reverse: true, Limit: 1})
		list = append(list, time.Since(t0).Seconds()*1000)
		if prof != nil {
			top, perr := prof.wait()
			s.Profile, s.Top = prof.path, top
			if perr != nil {
				s.Top = append(s.Top, "profile: "+perr.Error())
			}
		}
		if err := errors.Join(err, ag.stop()); err != nil {
			return err
		}
	}
	s.Figures = append(s.Figures,
		b.figure(fmt.Sprintf("start of a node holding a %d-entry log until its API answers", sz.Cold), "ms", full, nil, "", 0, false),
		b.figure("start of an empty node until its API answers", "ms", bare, nil, "", 0, false),
		b.figure("then its newest message listed", "ms", list, nil, "", 0, false))
	// The log's share of the start: the difference of the medians (per
	// run differences are noise at a high load average).
	open := Figure{Name: fmt.Sprintf("cold open of the %d-entry log (difference of the medians above)", sz.Cold), Unit: "ms",
		Value: median(full) - median(bare), Target: (&target{value: 100}).String()}
	open.Runs = []float64{open.Value}
	met := open.Value <= 100
	open.Met = &met
	s.Figures = append(s.Figures, open,
		b.figure("idle memory of a node with its plugins (3 s after start), the skein binary counted once", "MiB", idleOnce, &target{value: 80}, "", 0, false),
		b.figure("idle RSS of a node with its plugins (3 s after start), summed (the binary once per process)", "MiB", idle, nil, "", 0, false))
	return nil
}

func cores() int {
	if m := machine(); m.Cores > 0 {
		return m.Cores
	}
	return 1
}
