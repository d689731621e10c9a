package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tinyScenario = `
name: tiny
seed: 5
nodes: 4
links:
  default: {latency: 1ms, jitter: 1ms, loss: 0.1}
traffic:
  - {from: [0, 1], every: 20ms, count: 2, size: 100}
partitions:
  - {at: 0s, heal: 50ms, sides: [0-1]}
replication: {anti_entropy: 100ms}
run: {settle_timeout: 60s}
`

func writeScenario(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSimRunWritesOutputs: a tiny end-to-end run through the command
// writes every delivery as CSV and JSON, and the plots as PNG and SVG.
func TestSimRunWritesOutputs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"sim", "run", writeScenario(t, tinyScenario), "--out", out, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "tiny run [") {
		t.Errorf("no progress bar on stderr: %q", stderr.String())
	}
	var res simRunOutput
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
	}
	if len(res.Runs) != 1 || !res.Runs[0].Settled || res.Runs[0].Metrics["delivered_fraction"] != 1 {
		t.Fatalf("runs %+v", res.Runs)
	}
	f, err := os.Open(filepath.Join(out, "deliveries.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// 4 messages, each to the 3 other members.
	if len(recs) != 1+4*3 || strings.Join(recs[0], ",") != "seq,group,from,to,size,sent_ms,delivered_ms,latency_ms" {
		t.Fatalf("deliveries.csv: %d rows, header %v", len(recs), recs[0])
	}
	var full struct {
		Deliveries []struct {
			To string `json:"to"`
		} `json:"deliveries"`
	}
	data, err := os.ReadFile(filepath.Join(out, "deliveries.json"))
	if err != nil || json.Unmarshal(data, &full) != nil || len(full.Deliveries) != 12 {
		t.Fatalf("deliveries.json: %v, %d deliveries", err, len(full.Deliveries))
	}
	for _, name := range []string{"latency-cdf.png", "spread.png"} {
		pf, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(pf); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		pf.Close()
	}
	for _, name := range []string{"latency-cdf.svg", "spread.svg"} {
		if b, err := os.ReadFile(filepath.Join(out, name)); err != nil || !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s: not SVG (%v)", name, err)
		}
	}
}

func TestSimSweep(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	args := []string{"sim", "run", writeScenario(t, tinyScenario), "--out", out, "--sweep", "nodes=3,5", "--quiet"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	for _, name := range []string{"sweep.csv", "sweep.json", "convergence-vs-n.png", "bytes-vs-n.svg", "latency-cdf.png",
		"nodes=3/deliveries.csv", "nodes=5/spread.png"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet, yet stderr: %q", stderr.String())
	}
	if !strings.Contains(stdout.String(), "== nodes=5") {
		t.Errorf("stdout: %s", stdout.String())
	}
}

func TestSimBadScenario(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		args       []string
		want       string
	}{
		{"unknown key", "nodes: 3\nlinks:\n  default: {latancy: 5ms}\n", nil, "s.yaml:3: links.default.latancy: unknown key; did you mean \"latency\"?"},
		{"bad sweep key", "nodes: 3\n", []string{"--sweep", "nodez=1,2"}, "nodez: unknown key; did you mean \"nodes\"?"},
		{"bad sweep syntax", "nodes: 3\n", []string{"--sweep", "nodes"}, "expected key=v1,v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"sim", "run", writeScenario(t, tc.text), "--out", t.TempDir()}, tc.args...)
			if code := run(args, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr %q does not contain %q", stderr.String(), tc.want)
			}
			var check bytes.Buffer
			if code := run(append([]string{"sim", "check", args[2]}, tc.args...), &check, &check); code != 1 {
				t.Fatalf("sim check: exit %d, want 1", code)
			}
		})
	}
}

func TestSimCheckExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/sim/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples under examples/sim")
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"sim", "check", f}, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit %d\n%s", f, code, stderr.String())
		}
	}
}

// TestSimRunVirtualClock runs the real binary with --clock virtual: the
// run goes through a synctest bubble (sim/virtual.Main), its stdout stays
// the command's own (JSON here, no test harness output), its summary says
// the times are simulated, and a bad scenario still fails with the
// scenario's problems. In process (a test) the flag is refused.
func TestSimRunVirtualClock(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	r := skein(t, testEnv(t), "sim", "run", writeScenario(t, tinyScenario), "--clock", "virtual", "--out", out, "--json", "--quiet")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var res simRunOutput
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if len(res.Runs) != 1 || !res.Runs[0].Settled || res.Runs[0].Metrics["delivered_fraction"] != 1 {
		t.Fatalf("runs %+v", res.Runs)
	}
	summary, err := os.ReadFile(filepath.Join(out, "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(summary), "clock: virtual") {
		t.Errorf("the summary does not say the clock is virtual:\n%s", summary)
	}

	bad := skein(t, testEnv(t), "sim", "run", writeScenario(t, "nodes: 3\ntraffic: [{from: 5}]\n"), "--clock", "virtual")
	if bad.code != 1 || !strings.Contains(bad.stderr, "traffic[0].from: node index 5 out of range") {
		t.Fatalf("bad scenario: exit %d\n%s", bad.code, bad.stderr)
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"sim", "run", writeScenario(t, tinyScenario), "--clock", "virtual"}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "not from inside a test") {
		t.Fatalf("in process: exit %d\n%s", code, stderr.String())
	}
	if code := run([]string{"sim", "run", writeScenario(t, tinyScenario), "--clock", "sundial"}, &stdout, &stderr); code == 0 {
		t.Fatal("--clock sundial accepted")
	}
}
