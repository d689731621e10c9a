package experiment_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sim"
	"github.com/skein-p2p/skein/sim/experiment"
	"github.com/skein-p2p/skein/sim/scenario"
)

// The scenario's names are the core's.
func TestScenarioNamesAreTheCores(t *testing.T) {
	for _, name := range []string{scenario.SuiteDefault, scenario.SuiteAESGCM} {
		if s, err := crypto.SuiteByName(name); err != nil || s.Name() != name {
			t.Errorf("crypto.suite %q: %v", name, err)
		}
	}
	if crypto.DefaultSuite().Name() != scenario.SuiteDefault {
		t.Errorf("the default suite is %q, the scenario's %q", crypto.DefaultSuite().Name(), scenario.SuiteDefault)
	}
	for _, name := range []string{scenario.MergeLamport, scenario.MergeLamportCID} {
		if o, err := log.OrderByName(name); err != nil || o.Name() != name {
			t.Errorf("log.merge %q: %v", name, err)
		}
	}
}

// The tiny scenario runs and settles with each crypto suite and merge
// order, delivering every message to every member.
func TestScenarioWithEachSuiteAndOrder(t *testing.T) {
	for _, tc := range []struct{ suite, merge string }{
		{scenario.SuiteAESGCM, scenario.MergeLamport},
		{scenario.SuiteDefault, scenario.MergeLamportCID},
		{scenario.SuiteAESGCM, scenario.MergeLamportCID},
	} {
		t.Run(tc.suite+"/"+tc.merge, func(t *testing.T) {
			s, err := scenario.Parse("tiny.yaml", []byte(tiny), "tiny",
				scenario.Override{Key: "crypto.suite", Value: tc.suite},
				scenario.Override{Key: "log.merge", Value: tc.merge},
				scenario.Override{Key: "replication.reexchange", Value: "[50ms, 500ms]"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			res, err := experiment.Run(ctx, s, experiment.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Settled || len(res.Deliveries) != res.Expected || res.Expected != 30 {
				t.Fatalf("settled %v: %d of %d deliveries, want 30", res.Settled, len(res.Deliveries), res.Expected)
			}
		})
	}
}

// A node of another suite cannot read a group: given the default suite,
// it refuses an AES-GCM group's invitation (ErrSuiteMismatch) instead of
// joining a group none of whose payloads it could open.
func TestNodesOfDifferentSuites(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := sim.New(ctx, sim.Config{Nodes: 2, AntiEntropy: 100 * time.Millisecond,
		GroupOptions: []group.Option{group.WithSuite(crypto.AESGCMSuite{})}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := c.NewGroup(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Node(0).Messenger.Invite(ctx, g.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if inv.SuiteName() != crypto.AESGCMSuiteName {
		t.Fatalf("the invitation names suite %q", inv.SuiteName())
	}
	nd, err := c.Network().AddNode("other-suite")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := crypto.OpenKeystore(t.TempDir() + "/ks")
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	m, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: memstore.New(), Network: nd,
		GroupOptions: []group.Option{group.WithSuite(crypto.DefaultSuite())}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.JoinGroup(ctx, inv.Token(), "g"); !errors.Is(err, group.ErrSuiteMismatch) {
		t.Fatalf("join: %v, want group.ErrSuiteMismatch", err)
	}
}
