// Package report writes the outputs of a `skein sim` run: every delivery
// as CSV and JSON, a summary, and plots (PNG and SVG, gonum.org/v1/plot)
// of the delivery-latency CDF, the fraction of members holding each
// message over time, and, for a sweep, convergence time and bytes per
// node against N. It also draws the progress bar a run shows on stderr.
//
// A run fills a Result; Write puts its files in a directory; WriteSweep
// plots several Results against their node count.
//
// Usage sketch:
//
//	res := &report.Result{Scenario: "partition-heal", Nodes: 20, Seed: 7}
//	res.Sends = append(res.Sends, report.Send{Seq: 0, Group: "main", From: "n00", Members: 20})
//	res.Deliveries = append(res.Deliveries, report.Delivery{Seq: 0, To: "n03", Delivered: 12 * time.Millisecond})
//	files, err := report.Write("out/partition-heal", res)
package report

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Send is one message sent during a run.
type Send struct {
	// Seq numbers the message in the run's timeline.
	Seq   int    `json:"seq"`
	Group string `json:"group"`
	From  string `json:"from"`
	Size  int    `json:"size"`
	// At is when it was sent, from the start of the timeline.
	At time.Duration `json:"at_ns"`
	// Members is how many members the group had (the sender included).
	Members int `json:"members"`
}

// Delivery is one message reaching one member other than its sender.
type Delivery struct {
	Seq   int    `json:"seq"`
	Group string `json:"group"`
	From  string `json:"from"`
	To    string `json:"to"`
	Size  int    `json:"size"`
	// Sent and Delivered are times from the start of the timeline.
	Sent      time.Duration `json:"sent_ns"`
	Delivered time.Duration `json:"delivered_ns"`
}

// Latency is Delivered - Sent.
func (d Delivery) Latency() time.Duration { return d.Delivered - d.Sent }

// Mark is a network event of the timeline (a partition, a heal, a node
// going offline or online), drawn on the spread plot.
type Mark struct {
	At   time.Duration `json:"at_ns"`
	Kind string        `json:"kind"`
	Node string        `json:"node,omitempty"`
}

// NodeStat is one node's traffic over the run.
type NodeStat struct {
	Node string `json:"node"`
	// BytesSent and BytesReceived count payload bytes the node put on and
	// took off the simulated network: pubsub, blocks and direct requests.
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	// Counters holds further counters by name (simnet's per-node stats).
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// Result is everything a run measured.
type Result struct {
	Scenario string `json:"scenario"`
	Nodes    int    `json:"nodes"`
	Seed     uint64 `json:"seed"`
	// Clock is "virtual" when the run went on sim/virtual's fake clock
	// (every time below is then simulated time: link delays and protocol
	// intervals, no CPU time), else "" (the wall clock).
	Clock string `json:"clock,omitempty"`
	// Setup is the wall time to build the nodes and form the groups.
	Setup time.Duration `json:"setup_ns"`
	// Run is the wall time of the timeline and the wait to settle.
	Run time.Duration `json:"run_ns"`
	// Settled reports whether every member up at the end held every
	// message of its groups before the settle timeout.
	Settled bool `json:"settled"`
	// Convergence is the time from the last send to the last delivery
	// (0 without sends).
	Convergence time.Duration `json:"convergence_ns"`
	// Expected is how many deliveries a fully converged run makes: for
	// each message, the members other than its sender.
	Expected   int        `json:"expected_deliveries"`
	Sends      []Send     `json:"sends"`
	Marks      []Mark     `json:"marks,omitempty"`
	Deliveries []Delivery `json:"deliveries"`
	NodeStats  []NodeStat `json:"node_stats,omitempty"`
	// HeapPeak is the largest Go heap in use seen during the run, in bytes;
	// RSSPeak the process's peak resident set (VmHWM), in bytes.
	HeapPeak uint64 `json:"heap_peak_bytes"`
	RSSPeak  uint64 `json:"rss_peak_bytes"`
	// LoadAvg is /proc/loadavg at the end of the run.
	LoadAvg string `json:"loadavg"`
	// Counters holds network-wide counters by name.
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Metrics holds derived figures by name; add your own (see
	// docs/experiments.md).
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Finish sorts the deliveries (by message, then receiver) and computes the
// derived figures: convergence and the default metrics.
func (r *Result) Finish() {
	slices.SortFunc(r.Deliveries, func(a, b Delivery) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.To, b.To))
	})
	slices.SortFunc(r.Sends, func(a, b Send) int { return cmp.Compare(a.Seq, b.Seq) })
	var lastSend, lastDelivery time.Duration
	for _, s := range r.Sends {
		lastSend = max(lastSend, s.At)
	}
	for _, d := range r.Deliveries {
		lastDelivery = max(lastDelivery, d.Delivered)
	}
	if len(r.Sends) > 0 {
		r.Convergence = max(lastDelivery-lastSend, 0)
	}
	if r.Metrics == nil {
		r.Metrics = map[string]float64{}
	}
	for name, m := range metrics {
		r.Metrics[name] = m(r)
	}
}

// Metric computes one figure of a finished Result.
type Metric func(*Result) float64

var metrics = map[string]Metric{
	"delivered_fraction": func(r *Result) float64 {
		if r.Expected == 0 {
			return 1
		}
		return float64(len(r.Deliveries)) / float64(r.Expected)
	},
	"latency_p50_ms":  func(r *Result) float64 { return ms(r.LatencyQuantile(0.5)) },
	"latency_p99_ms":  func(r *Result) float64 { return ms(r.LatencyQuantile(0.99)) },
	"convergence_ms":  func(r *Result) float64 { return ms(r.Convergence) },
	"bytes_per_node":  func(r *Result) float64 { return r.BytesPerNode() },
	"wall_seconds":    func(r *Result) float64 { return (r.Setup + r.Run).Seconds() },
	"heap_peak_mib":   func(r *Result) float64 { return float64(r.HeapPeak) / (1 << 20) },
	"rss_peak_mib":    func(r *Result) float64 { return float64(r.RSSPeak) / (1 << 20) },
	"setup_seconds":   func(r *Result) float64 { return r.Setup.Seconds() },
	"timeline_sends":  func(r *Result) float64 { return float64(len(r.Sends)) },
	"deliveries_made": func(r *Result) float64 { return float64(len(r.Deliveries)) },
}

// RegisterMetric adds a figure that Finish computes into Result.Metrics
// and the summary and sweep table show. It panics on a duplicate name.
func RegisterMetric(name string, m Metric) {
	if _, dup := metrics[name]; dup {
		panic("report: metric " + name + " registered twice")
	}
	metrics[name] = m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Latencies returns every delivery's latency, ascending.
func (r *Result) Latencies() []time.Duration {
	out := make([]time.Duration, len(r.Deliveries))
	for i, d := range r.Deliveries {
		out[i] = d.Latency()
	}
	slices.Sort(out)
	return out
}

// LatencyQuantile returns the q-quantile (0..1) of the delivery latency,
// 0 without deliveries.
func (r *Result) LatencyQuantile(q float64) time.Duration {
	l := r.Latencies()
	if len(l) == 0 {
		return 0
	}
	return l[min(int(q*float64(len(l))), len(l)-1)]
}

// BytesPerNode is the mean of bytes sent plus received per node.
func (r *Result) BytesPerNode() float64 {
	if len(r.NodeStats) == 0 {
		return 0
	}
	var sum uint64
	for _, s := range r.NodeStats {
		sum += s.BytesSent + s.BytesReceived
	}
	return float64(sum) / float64(len(r.NodeStats))
}

// Write writes the run's files into dir (created if needed) and returns
// their paths: deliveries.csv, deliveries.json (the whole Result),
// summary.txt, and the plots latency-cdf and spread in PNG and SVG.
func Write(dir string, r *Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write results: %w", err)
	}
	var files []string
	add := func(name string, write func(string) error) error {
		p := filepath.Join(dir, name)
		if err := write(p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		files = append(files, p)
		return nil
	}
	steps := []struct {
		name  string
		write func(string) error
	}{
		{"deliveries.csv", r.writeCSV},
		{"deliveries.json", r.writeJSON},
		{"summary.txt", func(p string) error { return os.WriteFile(p, []byte(r.Summary()), 0o644) }},
	}
	for _, s := range steps {
		if err := add(s.name, s.write); err != nil {
			return files, err
		}
	}
	for _, ext := range []string{"png", "svg"} {
		if err := add("latency-cdf."+ext, r.plotLatencyCDF); err != nil {
			return files, err
		}
		if err := add("spread."+ext, r.plotSpread); err != nil {
			return files, err
		}
	}
	return files, nil
}

func (r *Result) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"seq", "group", "from", "to", "size", "sent_ms", "delivered_ms", "latency_ms"})
	f3 := func(d time.Duration) string { return strconv.FormatFloat(ms(d), 'f', 3, 64) }
	for _, d := range r.Deliveries {
		_ = w.Write([]string{strconv.Itoa(d.Seq), d.Group, d.From, d.To, strconv.Itoa(d.Size),
			f3(d.Sent), f3(d.Delivered), f3(d.Latency())})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *Result) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Summary is a short human-readable account of the run.
func (r *Result) Summary() string {
	s := fmt.Sprintf("scenario %s: %d nodes, seed %d\n", r.Scenario, r.Nodes, r.Seed)
	if r.Clock != "" {
		s += "clock: " + r.Clock + " (times are simulated: link delays and protocol intervals, no CPU time)\n"
	}
	s += fmt.Sprintf("sends %d, deliveries %d of %d expected (%.1f%%), settled %v\n",
		len(r.Sends), len(r.Deliveries), r.Expected, 100*r.Metrics["delivered_fraction"], r.Settled)
	s += fmt.Sprintf("latency p50 %s, p99 %s; convergence after the last send %s\n",
		r.LatencyQuantile(0.5).Round(time.Microsecond), r.LatencyQuantile(0.99).Round(time.Microsecond), r.Convergence.Round(time.Millisecond))
	s += fmt.Sprintf("setup %s, run %s; heap peak %.0f MiB, RSS peak %.0f MiB; bytes per node %.0f\n",
		r.Setup.Round(time.Millisecond), r.Run.Round(time.Millisecond), float64(r.HeapPeak)/(1<<20), float64(r.RSSPeak)/(1<<20), r.BytesPerNode())
	if r.LoadAvg != "" {
		s += "load average: " + r.LoadAvg + "\n"
	}
	names := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		s += fmt.Sprintf("  %-20s %g\n", k, r.Metrics[k])
	}
	return s
}
