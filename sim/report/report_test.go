package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample(nodes int) *Result {
	r := &Result{Scenario: "t", Nodes: nodes, Seed: 1}
	for seq := range 3 {
		at := time.Duration(seq) * 100 * time.Millisecond
		r.Sends = append(r.Sends, Send{Seq: seq, Group: "main", From: "n0", Size: 200, At: at, Members: nodes})
		for to := 1; to < nodes; to++ {
			r.Deliveries = append(r.Deliveries, Delivery{Seq: seq, Group: "main", From: "n0", To: "n" + string(rune('0'+to)),
				Size: 200, Sent: at, Delivered: at + time.Duration(to)*time.Millisecond})
		}
		r.Expected += nodes - 1
	}
	for i := range nodes {
		r.NodeStats = append(r.NodeStats, NodeStat{Node: "n" + string(rune('0'+i)), BytesSent: 1000, BytesReceived: uint64(500 * nodes)})
	}
	r.Finish()
	return r
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	r := sample(4)
	r.Marks = []Mark{{At: 50 * time.Millisecond, Kind: "partition"}, {At: 150 * time.Millisecond, Kind: "heal"}}
	files, err := Write(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"deliveries.csv", "deliveries.json", "summary.txt", "latency-cdf.png", "spread.png", "latency-cdf.svg", "spread.svg"}
	if len(files) != len(want) {
		t.Fatalf("files %v", files)
	}
	f, err := os.Open(filepath.Join(dir, "deliveries.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+9 || recs[0][0] != "seq" || recs[1][3] != "n1" || recs[1][7] != "1.000" {
		t.Fatalf("csv %v", recs[:2])
	}
	var back Result
	data, _ := os.ReadFile(filepath.Join(dir, "deliveries.json"))
	if err := json.Unmarshal(data, &back); err != nil || len(back.Deliveries) != 9 || back.Metrics["delivered_fraction"] != 1 {
		t.Fatalf("json: %v %d %v", err, len(back.Deliveries), back.Metrics)
	}
	pf, _ := os.Open(filepath.Join(dir, "spread.png"))
	defer pf.Close()
	if _, err := png.Decode(pf); err != nil {
		t.Fatalf("spread.png: %v", err)
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "latency-cdf.svg"))
	if !bytes.Contains(svg, []byte("<svg")) {
		t.Fatal("latency-cdf.svg is not SVG")
	}
	if r.Convergence != 3*time.Millisecond {
		t.Fatalf("convergence %s", r.Convergence)
	}
}

func TestWriteEmpty(t *testing.T) {
	r := &Result{Scenario: "empty", Nodes: 1}
	r.Finish()
	if _, err := Write(t.TempDir(), r); err != nil {
		t.Fatal(err)
	}
}

func TestWriteSweep(t *testing.T) {
	dir := t.TempDir()
	pts := []SweepPoint{{"4", sample(4)}, {"2", sample(2)}, {"8", sample(8)}}
	files, err := WriteSweep(dir, "nodes", pts)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 8 {
		t.Fatalf("files %v", files)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "sweep.csv"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "nodes,settled,loadavg,") || !strings.HasPrefix(lines[1], "2,false,") || !strings.HasPrefix(lines[3], "8,false,") {
		t.Fatalf("sweep.csv:\n%s", data)
	}
}

func TestWriteSweepOtherKey(t *testing.T) {
	dir := t.TempDir()
	pts := []SweepPoint{{"250ms", sample(4)}, {"1s", sample(4)}}
	if _, err := WriteSweep(dir, "replication.anti_entropy", pts); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"convergence-vs-replication.anti_entropy.png", "bytes-vs-replication.anti_entropy.svg", "sweep.csv"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	for i, tc := range []struct {
		key, value string
		x          float64
	}{{"nodes", "4", 4}, {"links.default.loss", "0.25", 0.25}, {"run.settle_timeout", "2s", 2000}, {"links.default.bandwidth", "1KiB", 1024}, {"name", "x", 3}} {
		if x, _ := sweepX(tc.key, 3, SweepPoint{tc.value, sample(4)}); x != tc.x {
			t.Errorf("case %d: x = %v, want %v", i, x, tc.x)
		}
	}
}

func TestRegisterMetric(t *testing.T) {
	RegisterMetric("test_max_latency_ms", func(r *Result) float64 {
		l := r.Latencies()
		if len(l) == 0 {
			return 0
		}
		return ms(l[len(l)-1])
	})
	defer delete(metrics, "test_max_latency_ms")
	r := sample(4)
	if r.Metrics["test_max_latency_ms"] != 3 {
		t.Fatalf("metrics %v", r.Metrics)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate registration did not panic")
		}
	}()
	RegisterMetric("test_max_latency_ms", nil)
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, "run", 10)
	p.Set(5, "sending")
	p.Done("settled")
	out := b.String()
	if !strings.Contains(out, "[###############...............]  50% ") || !strings.Contains(out, "settled") {
		t.Fatalf("progress output %q", out)
	}
	var nilP *Progress
	nilP.Set(1, "")
	nilP.Done("")
}
