package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skein-p2p/skein/internal/bench"
)

// TestBenchQuick runs `skein bench --quick` with tiny sizes, every
// scenario in both modes, and checks the report is well-formed: every
// scenario and mode present without an error, with figures, load averages
// and the limits. It asserts no timing.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a bench of real nodes")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "report")
	r := skein(t, testEnv(t), "bench", "--quick", "--runs", "1", "--append-n", "20", "--catchup-n", "20",
		"--latency-n", "10", "--chat-n", "5", "--chat-pace", "10ms", "--burst-n", "20", "--burst-runs", "1", "--cold-n", "40",
		"--profile", filepath.Join(dir, "prof"), "--out", out)
	if r.code != 0 {
		t.Fatalf("bench: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "[skein bench]") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
	b, err := os.ReadFile(out + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	if rep.Machine.Cores == 0 || rep.GoVersion == "" || rep.Modules["github.com/libp2p/go-libp2p"] == "" || rep.Commit == "" {
		t.Errorf("report header incomplete: machine %+v, go %q, modules %v, commit %q", rep.Machine, rep.GoVersion, rep.Modules, rep.Commit)
	}
	limits := map[string]bool{}
	for _, l := range rep.Limits {
		if l.Value <= 0 {
			t.Errorf("limit %s = %v", l.Name, l.Value)
		}
		limits[l.Name] = true
	}
	for _, name := range []string{bench.LimitSign, bench.LimitVerify, bench.LimitPebbleSync, bench.LimitPebbleBatch, bench.LimitStreamRTT} {
		if !limits[name] {
			t.Errorf("no limit %s", name)
		}
	}
	seen := map[string]bool{}
	for _, s := range rep.Scenarios {
		key := s.ID + "/" + s.Mode
		seen[key] = true
		if s.Error != "" {
			t.Errorf("%s failed: %s", key, s.Error)
		}
		if len(s.Figures) == 0 || s.LoadBefore == "" || s.LoadAfter == "" {
			t.Errorf("%s: %d figures, load %q/%q", key, len(s.Figures), s.LoadBefore, s.LoadAfter)
		}
		for _, f := range s.Figures {
			if len(f.Runs) == 0 || f.Unit == "" {
				t.Errorf("%s: figure %q has no runs or unit", key, f.Name)
			}
		}
	}
	md, err := os.ReadFile(out + ".md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range bench.AllScenarios {
		for _, mode := range []string{"linked", "process"} {
			if !seen[id+"/"+mode] {
				t.Errorf("scenario %s in mode %s missing from the report", id, mode)
			}
			if !strings.Contains(string(md), "## "+id+". ") {
				t.Errorf("markdown has no section for %s", id)
			}
		}
	}
}
