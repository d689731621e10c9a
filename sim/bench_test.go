package sim_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sim"
)

// BenchmarkGroupOfN measures issue 13's targets in one process over simnet
// links of 20 ms with 1% loss: a group of N set up (every member sees N),
// one message reaching every member, removing a member and the rekey
// reaching everyone, memory and goroutines per member, and closing the
// cluster. One iteration is one whole run (use -benchtime=1x). N=1000 runs
// with SKEIN_BENCH_LARGE=1; SKEIN_BENCH_N=a,b,... picks the sizes;
// SKEIN_BENCH_TIMEOUT bounds one run (default 20m); SKEIN_BENCH_HEAPPROFILE
// names a file for a heap profile of the settled group,
// SKEIN_BENCH_GOROUTINEPROFILE one for its goroutines.
func BenchmarkGroupOfN(b *testing.B) {
	sizes := []int{10, 100}
	if os.Getenv("SKEIN_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1000)
	}
	if s := os.Getenv("SKEIN_BENCH_N"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("SKEIN_BENCH_N: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for b.Loop() {
				groupRun(b, n)
			}
		})
	}
}

func groupRun(b *testing.B, n int) {
	limit := 20 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("SKEIN_BENCH_TIMEOUT")); err == nil {
		limit = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	verbose := os.Getenv("SKEIN_BENCH_PROGRESS") != ""
	last := time.Now()
	progress := func(p sim.Progress) {
		if verbose && time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "%s %d/%d %v %s\n", p.Phase, p.Done, p.Total, p.Elapsed.Round(time.Millisecond), p.Detail)
		}
	}
	goBefore := runtime.NumGoroutine()
	cpu0 := cpuTime()
	start := time.Now()
	c, err := sim.New(ctx, sim.Config{Nodes: n, Seed: 7,
		Link: simnet.Link{Latency: 20 * time.Millisecond, Loss: 0.01}, Progress: progress})
	if err != nil {
		b.Fatal(err)
	}
	nodesUp := time.Since(start)
	g, err := c.NewGroup(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	setup := time.Since(start)
	setupCPU := cpuTime() - cpu0
	goroutines := runtime.NumGoroutine() - goBefore
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := ms.HeapInuse
	if path := os.Getenv("SKEIN_BENCH_HEAPPROFILE"); path != "" {
		// What the settled group holds (go tool pprof -sample_index=inuse_space).
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	if path := os.Getenv("SKEIN_BENCH_GOROUTINEPROFILE"); path != "" {
		// Who holds the settled group's goroutines (go tool pprof -top).
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("goroutine").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}

	msg, err := g.Send(ctx, c.Node(n/2), []byte("to everyone"))
	if err != nil {
		b.Fatal(err)
	}
	deliver, err := g.WaitDelivered(ctx, msg.CID)
	if err != nil {
		b.Fatal(err)
	}
	rstart := time.Now()
	if err := g.Remove(ctx, c.Node(0), c.Node(n-1)); err != nil {
		b.Fatal(err)
	}
	remove := time.Since(rstart)
	st := c.Network().Stats()
	cstart := time.Now()
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	closing := time.Since(cstart)
	b.ReportMetric(nodesUp.Seconds(), "nodes-s")
	b.ReportMetric(setup.Seconds(), "setup-s")
	b.ReportMetric(setupCPU.Seconds(), "setup-cpu-s")
	b.ReportMetric(float64(deliver.Milliseconds()), "deliver-all-ms")
	b.ReportMetric(remove.Seconds(), "remove-rekey-s")
	b.ReportMetric(closing.Seconds(), "close-s")
	b.ReportMetric(float64(heap)/float64(n)/(1<<20), "heap-MB/member")
	b.ReportMetric(float64(goroutines)/float64(n), "goroutines/member")
	b.ReportMetric(float64(st.Sent)/float64(n), "copies/member")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
	b.Logf("N=%d: %+v; load %s", n, st, loadavg())
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(data))
}
