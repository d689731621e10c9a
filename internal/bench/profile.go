package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// cpuProfile records a CPU profile of a node under test for about d
// (whole seconds, at least 1) from its /debug/pprof/profile, in the
// background. wait writes it to path and returns its heaviest functions.
type cpuProfile struct {
	path string
	done chan error
	top  []string
}

// startProfile starts a CPU profile of a for d into path; nil when a has
// no profile endpoint or path is "".
func startProfile(ctx context.Context, a *agent, d time.Duration, path string) *cpuProfile {
	if a == nil || a.metricsAddr == "" || path == "" {
		return nil
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	p := &cpuProfile{path: path, done: make(chan error, 1)}
	go func() {
		p.done <- p.fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", a.metricsAddr, secs))
	}()
	return p
}

func (p *cpuProfile) fetch(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.path, b, 0o644); err != nil {
		return err
	}
	prof, err := profile.ParseData(b)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	p.top = topFunctions(prof, 8)
	return nil
}

// wait waits for the profile and returns its heaviest functions.
func (p *cpuProfile) wait() ([]string, error) {
	if p == nil {
		return nil, nil
	}
	err := <-p.done
	return p.top, err
}

// topFunctions returns the n functions with the largest cumulative CPU
// time in prof, each as "share% cum (share% flat) function", leaving out
// the runtime's scheduler and goroutine entry points that every stack
// holds.
func topFunctions(prof *profile.Profile, n int) []string {
	idx := len(prof.SampleType) - 1 // cpu nanoseconds
	flat := map[string]int64{}
	cum := map[string]int64{}
	var total int64
	for _, s := range prof.Sample {
		v := s.Value[idx]
		total += v
		seen := map[string]bool{}
		for i, loc := range s.Location {
			for j, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				name := line.Function.Name
				if i == 0 && j == 0 {
					flat[name] += v
				}
				if !seen[name] {
					seen[name] = true
					cum[name] += v
				}
			}
		}
	}
	if total == 0 {
		return nil
	}
	type fn struct {
		name      string
		cum, flat int64
	}
	var fns []fn
	for name, c := range cum {
		if boring(name) {
			continue
		}
		fns = append(fns, fn{name, c, flat[name]})
	}
	slices.SortFunc(fns, func(a, b fn) int {
		if a.cum != b.cum {
			return int(b.cum - a.cum)
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	dur := time.Duration(prof.DurationNanos)
	for _, f := range fns[:min(n, len(fns))] {
		out = append(out, fmt.Sprintf("%.0f%% cum (%.0f%% flat) %s", 100*float64(f.cum)/float64(total), 100*float64(f.flat)/float64(total), f.name))
	}
	if dur > 0 {
		out = append(out, fmt.Sprintf("(CPU %.2f s in %.1f s: %.0f%% of one core)", time.Duration(total).Seconds(), dur.Seconds(), 100*float64(total)/float64(dur)))
	}
	return out
}

// boring are stack frames every goroutine has.
func boring(name string) bool {
	for _, p := range []string{"runtime.goexit", "runtime.main", "main.main", "runtime.mcall", "runtime.systemstack",
		"google.golang.org/grpc.(*Server).serveStreams", "google.golang.org/grpc.(*Server).handleStream", "net/http.(*conn).serve"} {
		if name == p || strings.HasPrefix(name, p+".func") {
			return true
		}
	}
	return false
}

// fetchHeap writes the heap profile of a's node process to path and
// returns its live heap in bytes (inuse_space: as of the last GC). With
// path "" or no profile endpoint it does nothing.
func fetchHeap(ctx context.Context, a *agent, path string) (uint64, error) {
	if a == nil || a.metricsAddr == "" || path == "" {
		return 0, errors.New("no profile endpoint")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.metricsAddr+"/debug/pprof/heap", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("heap profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return 0, err
	}
	prof, err := profile.ParseData(b)
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	idx := -1
	for i, st := range prof.SampleType {
		if st.Type == "inuse_space" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, errors.New("heap profile: no inuse_space")
	}
	var sum int64
	for _, s := range prof.Sample {
		sum += s.Value[idx]
	}
	return uint64(max(sum, 0)), nil
}
