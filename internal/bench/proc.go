package bench

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux this runs on).
const clockTicks = 100

// procUsage is the resident memory and CPU time of a process tree.
type procUsage struct {
	RSS  uint64        // bytes
	CPU  time.Duration // user + system
	PIDs int
}

// treeUsage sums RSS and CPU over pid and its descendants (the node and
// its plugin processes). A process that ends while it is read is skipped.
func treeUsage(pid int) procUsage {
	var u procUsage
	for _, p := range treePIDs(pid) {
		_, _, cpu, ok := readStat(p)
		if !ok {
			continue
		}
		u.CPU += cpu
		u.RSS += readRSS(p)
		u.PIDs++
	}
	return u
}

// readStat returns a process's state, parent and CPU time.
func readStat(pid int) (state string, ppid int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] state, f[1] ppid, ..., f[11] utime, f[12] stime.
	if len(f) < 13 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return f[0], ppid, time.Duration(ut+st) * time.Second / clockTicks, true
}

// memUsage is the resident memory of a process tree counted two ways.
type memUsage struct {
	// RSS sums VmRSS: pages shared between the processes (the skein
	// binary, which every plugin process re-executes) count once each.
	RSS uint64
	// Once counts the binary once: the anonymous memory of every process
	// (heap, stacks: never shared here) plus the largest file-backed
	// resident share of one of them (/proc/PID/smaps_rollup).
	Once uint64
}

// treeMemory measures pid and its descendants both ways.
func treeMemory(pid int) memUsage {
	var m memUsage
	var file uint64
	for _, p := range treePIDs(pid) {
		rss, anon, ok := readRollup(p)
		if !ok {
			continue
		}
		m.RSS += rss
		m.Once += anon
		file = max(file, rss-min(rss, anon))
	}
	m.Once += file
	return m
}

// treePIDs returns pid and its descendants.
func treePIDs(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, _, ok := readStat(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	stack := []int{pid}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		stack = append(stack, children[p]...)
		out = append(out, p)
	}
	return out
}

// readRollup returns a process's resident and anonymous memory in bytes
// from /proc/PID/smaps_rollup.
func readRollup(pid int) (rss, anon uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = kb * 1024
		case "Anonymous:":
			anon = kb * 1024
		}
	}
	return rss, anon, rss > 0
}

// readRSS returns VmRSS of a process in bytes (0 if unknown).
func readRSS(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// peakSampler samples the memory of process trees every 50 ms and keeps
// the largest sums seen (summed RSS and binary-once, each its own peak).
type peakSampler struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	peak   memUsage
}

func samplePeak(pids ...int) *peakSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &peakSampler{cancel: cancel}
	sample := func() {
		var sum memUsage
		for _, p := range pids {
			m := treeMemory(p)
			sum.RSS += m.RSS
			sum.Once += m.Once
		}
		s.mu.Lock()
		s.peak.RSS = max(s.peak.RSS, sum.RSS)
		s.peak.Once = max(s.peak.Once, sum.Once)
		s.mu.Unlock()
	}
	sample()
	s.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sample()
			}
		}
	})
	return s
}

// stop ends sampling and returns the peaks in bytes.
func (s *peakSampler) stop() memUsage {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
