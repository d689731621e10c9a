package scenario

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoadFull(t *testing.T) {
	s, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "full" || s.Seed != 42 || len(p.Nodes) != 20 || p.Nodes[3] != "n0003" {
		t.Fatalf("scenario %q seed %d nodes %v", s.Name, s.Seed, p.Nodes)
	}
	if s.Links.Default.Bandwidth != 1<<20 || s.Traffic[0].Size != 1024 || s.Traffic[1].Size != 200 {
		t.Fatalf("sizes: %v %v %v", s.Links.Default.Bandwidth, s.Traffic[0].Size, s.Traffic[1].Size)
	}
	if p.Region[0] != "eu" || p.Region[10] != "us" {
		t.Fatalf("regions %v", p.Region)
	}
	for _, tc := range []struct {
		a, b int
		lat  time.Duration
	}{{0, 19, time.Millisecond}, {1, 12, 80 * time.Millisecond}, {1, 2, 2 * time.Millisecond}, {11, 12, 5 * time.Millisecond}} {
		if got := p.LinkBetween(tc.a, tc.b).Latency; got != tc.lat {
			t.Errorf("link %d-%d latency %s, want %s", tc.a, tc.b, got, tc.lat)
		}
		if got := p.LinkBetween(tc.b, tc.a).Latency; got != tc.lat {
			t.Errorf("link %d-%d latency %s, want %s", tc.b, tc.a, got, tc.lat)
		}
	}
	kinds := map[EventKind]int{}
	for i, ev := range p.Events {
		kinds[ev.Kind]++
		if i > 0 && ev.At < p.Events[i-1].At {
			t.Fatalf("events not sorted at %d", i)
		}
	}
	// 2 senders x 3 + 5 members x 1 sends; 2 picked nodes off and on; one partition and heal.
	want := map[EventKind]int{EventSend: 11, EventOffline: 2, EventOnline: 2, EventPartition: 1, EventHeal: 1}
	if !reflect.DeepEqual(kinds, want) || p.Sends != 11 {
		t.Fatalf("events %v (sends %d), want %v", kinds, p.Sends, want)
	}
	if s.Log.Merge != MergeLamportCID || s.Crypto.Suite != SuiteAESGCM {
		t.Fatalf("merge %q suite %q", s.Log.Merge, s.Crypto.Suite)
	}
	r := s.Replication
	if r.AntiEntropy != 200*time.Millisecond || r.Reexchange == nil || !reflect.DeepEqual(*r.Reexchange, []time.Duration{50 * time.Millisecond, 500 * time.Millisecond}) ||
		r.BulkRetry != 5*time.Second || r.FetchTimeout != 3*time.Second || r.RequestTimeout != 2*time.Second {
		t.Fatalf("replication %+v", r)
	}
	if d, _ := Parse("x.yaml", []byte("nodes: 2\n"), "x"); d.Replication.Reexchange != nil || d.Log.Merge != MergeLamport || d.Crypto.Suite != SuiteDefault {
		t.Fatalf("defaults: reexchange %v merge %q suite %q", d.Replication.Reexchange, d.Log.Merge, d.Crypto.Suite)
	}
	if d, _ := Parse("x.yaml", []byte("nodes: 2\nreplication: {reexchange: []}\n"), "x"); d.Replication.Reexchange == nil || len(*d.Replication.Reexchange) != 0 {
		t.Fatal("reexchange: [] is not an empty list of times")
	}
	if s.Log.AppendRefs == nil || *s.Log.AppendRefs != 2 {
		t.Fatalf("log.append_refs %v", s.Log.AppendRefs)
	}
	if p.Groups[1].Name != "small" || !reflect.DeepEqual(p.Groups[1].Members, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("groups %+v", p.Groups)
	}
}

// TestBadScenarios: every problem names the key (and the line where the
// decoder knows it), with a hint.
func TestBadScenarios(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error, in order
	}{
		{"unknown top key", "nodes: 3\nnodez: 4\n", []string{"x.yaml:2: nodez: unknown key; did you mean \"nodes\"?"}},
		{"unknown nested key", "nodes: 3\nlinks:\n  default:\n    latancy: 5ms\n", []string{"x.yaml:4: links.default.latancy: unknown key; did you mean \"latency\"?"}},
		{"unknown key in list item", "nodes: 3\ntraffic:\n  - cont: 3\n", []string{"x.yaml:3: traffic[0].cont: unknown key; did you mean \"count\"?"}},
		{"unknown key far from any", "nodes: 3\nwhatever: 1\n", []string{"whatever: unknown key (known keys: churn, crypto, degree, groups"}},
		{"every problem at once", "nodes: x\nseed: -1\nlinks: {default: {latency: 5}}\n", []string{
			"x.yaml:1: nodes: expected a whole number, got string \"x\"",
			"x.yaml:2: seed: expected a whole number, not negative",
			"x.yaml:3: links.default.latency: expected a duration"}},
		{"bad duration", "nodes: 3\nrun: {settle_timeout: 5 minutes}\n", []string{"run.settle_timeout: not a duration: \"5 minutes\""}},
		{"bad size", "nodes: 3\nlinks: {default: {bandwidth: fast}}\n", []string{"links.default.bandwidth: must be a size"}},
		{"no nodes", "seed: 3\n", []string{"nodes: must be between 1 and 100000, got 0"}},
		{"loss out of range", "nodes: 3\nlinks: {default: {loss: 1.5}}\n", []string{"links.default.loss: must be in [0, 1], got 1.5"}},
		{"range past nodes", "nodes: 3\ngroups: [{name: g, members: 0-5}]\n", []string{"x.yaml:2: groups[0].members: range \"0-5\" goes past the last node (2)"}},
		{"unknown selector", "nodes: 3\ngroups: [{name: g, members: asia}]\n", []string{"groups[0].members: \"asia\" is not a node, region, index or range"}},
		{"unknown region link", "nodes: 3\nregions: {eu: all}\nlinks: {regions: [{between: [eu, us]}]}\n", []string{"links.regions[0].between: unknown region \"us\""}},
		{"unknown group", "nodes: 3\ntraffic: [{group: nope}]\n", []string{"traffic[0].group: unknown group \"nope\""}},
		{"sender not member", "nodes: 3\ngroups: [{name: g, members: 0-1}]\ntraffic: [{group: g, from: 2}]\n", []string{"traffic[0].from: node n0002 is not a member of group \"g\""}},
		{"every needed", "nodes: 3\ntraffic: [{count: 3}]\n", []string{"traffic[0].every: required when count > 1"}},
		{"heal before partition", "nodes: 3\npartitions: [{at: 2s, heal: 1s, sides: [0]}]\n", []string{"partitions[0].heal: must be after at (2s), got 1s"}},
		{"overlapping partitions", "nodes: 3\npartitions: [{at: 1s, heal: 3s, sides: [0]}, {at: 2s, sides: [1]}]\n", []string{"partitions[1].at: starts before partitions[0] heals"}},
		{"node on two sides", "nodes: 3\npartitions: [{at: 1s, sides: [0-1, 1-2]}]\n", []string{"partitions[0].sides[1]: node n0001 is also in side 0"}},
		{"online before offline", "nodes: 3\nchurn: [{nodes: 0, offline: 2s, online: 1s}]\n", []string{"churn[0].online: must be after offline"}},
		{"pick too many", "nodes: 3\nchurn: [{nodes: 0-1, pick: 3, offline: 1s}]\n", []string{"churn[0].pick: must be between 0 and the 2 selected nodes, got 3"}},
		{"node in two regions", "nodes: 3\nregions: {a: 0-1, b: 1-2}\n", []string{"regions.b: node n0001 is already in region \"a\""}},
		{"merge strategy not available", "nodes: 3\nlog: {merge: last-writer-wins}\n", []string{"log.merge: \"last-writer-wins\" is not a merge order: use \"lamport\""}},
		{"crypto suite not available", "nodes: 3\ncrypto: {suite: aes-gcm}\n", []string{"crypto.suite: \"aes-gcm\" is not a crypto suite: use"}},
		{"re-exchange not increasing", "nodes: 3\nreplication: {reexchange: [1s, 500ms]}\n", []string{"replication.reexchange[1]: the times must be positive and increase"}},
		{"re-exchange zero", "nodes: 3\nreplication: {reexchange: [0]}\n", []string{"replication.reexchange[0]: the times must be positive"}},
		{"bad append refs", "nodes: 3\nlog: {append_refs: 70}\n", []string{"log.append_refs: must be in [0, 62], got 70"}},
		{"too many sends", "nodes: 10\ntraffic: [{count: 2000000000, every: 1s}]\n", []string{"traffic[0].count: the traffic sends 20000000000 messages or more, above the limit of 1000000"}},
		{"key twice", "nodes: 3\nnodes: 4\n", []string{"nodes: key given twice"}},
		{"not yaml", "nodes: [3\n", []string{"scenario x.yaml: not YAML"}},
		{"mapping expected", "nodes: 3\nlinks: fast\n", []string{"links: expected a mapping of keys, got string \"fast\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml), "x")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			msg, at := err.Error(), 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain (in order) %q", msg, w)
				}
				at += i + len(w)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	base := "nodes: 3\nlinks: {default: {latency: 5ms}}\n"
	for _, tc := range []struct {
		name    string
		ov      Override
		check   func(*Scenario) bool
		wantErr string
	}{
		{"top level", Override{"nodes", "100"}, func(s *Scenario) bool { return s.Nodes == 100 }, ""},
		{"nested existing", Override{"links.default.latency", "20ms"}, func(s *Scenario) bool { return s.Links.Default.Latency == 20*time.Millisecond }, ""},
		{"nested new", Override{"links.default.loss", "0.5"}, func(s *Scenario) bool { return s.Links.Default.Loss == 0.5 }, ""},
		{"unknown key", Override{"nodez", "3"}, nil, "nodez: unknown key"},
		{"through a scalar", Override{"nodes.x", "3"}, nil, "--sweep: nodes.x: nodes is not a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("x.yaml", []byte(base), "x", tc.ov)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				t.Fatalf("override not applied: %+v", s)
			}
		})
	}
}

func TestPlanDeterministic(t *testing.T) {
	a, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Load("testdata/full.yaml")
	pa, _ := a.Plan()
	pb, _ := b.Plan()
	if !reflect.DeepEqual(pa.Events, pb.Events) {
		t.Fatal("same scenario, same seed: different timelines")
	}
	c, _ := Load("testdata/full.yaml", Override{"seed", "43"})
	pc, _ := c.Plan()
	if reflect.DeepEqual(pa.Events, pc.Events) {
		t.Fatal("another seed gave the same timeline (send offsets and churn picks come from the seed)")
	}
}

func TestSelectorScalesWithSweep(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		s, err := Parse("x.yaml", []byte("nodes: 1\nregions: {a: 0%-50%, b: 50%-100%}\n"), "x", Override{"nodes", strconv.Itoa(n)})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := s.Plan()
		count := map[string]int{}
		for _, r := range p.Region {
			count[r]++
		}
		if count["a"] != n/2 || count["b"] != n/2 {
			t.Fatalf("nodes %d: regions %v", n, count)
		}
	}
}

func TestBody(t *testing.T) {
	for _, tc := range []struct{ seq, size int }{{0, 200}, {12345, 1024}, {7, 3}} {
		b := Body(9, tc.seq, tc.size)
		if tc.size >= 20 && len(b) != tc.size {
			t.Fatalf("body size %d, want %d", len(b), tc.size)
		}
		got, ok := BodySeq(b)
		if !ok || got != tc.seq {
			t.Fatalf("BodySeq = %d %v, want %d", got, ok, tc.seq)
		}
		if string(Body(9, tc.seq, tc.size)) != string(b) {
			t.Fatal("body not deterministic")
		}
	}
	if _, ok := BodySeq([]byte("hello")); ok {
		t.Fatal("BodySeq accepted a foreign body")
	}
}
