package group

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
)

// replay computes the membership from scratch, by the definition in
// docs/protocol.md ("Removal in the state"): pass 0 applies every item in
// order; if it removed anyone, pass 1 applies them again leaving out what
// the filter refuses. It returns both passes' states and the final
// verdict of each item, and touches neither the items nor the group.
func replay(g *Group, items []*metaItem) (s1, final *metaState, verdicts []error) {
	s1 = newMetaState()
	verdicts = make([]error, len(items))
	for i, it := range items {
		verdicts[i] = g.apply(s1, it).err
	}
	f := computeFilter(s1, items)
	if len(f) == 0 {
		return s1, s1, verdicts
	}
	s2 := newMetaState()
	for i, it := range items {
		if err := f.pastCutoff(it); err != nil {
			verdicts[i] = err
			continue
		}
		verdicts[i] = g.apply(s2, it).err
	}
	return s1, s2, verdicts
}

// dumpState renders a state canonically. own adds what is particular to
// the device (its chain shares, the chains shared with it).
func dumpState(st *metaState, own bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "created %v kind %d accounts %s\n", st.created, st.kind, keysHex(st.accounts))
	var devs []string
	for id, c := range st.devices {
		devs = append(devs, fmt.Sprintf("%016x=%s/%s", id, hex.EncodeToString(c.Device[:4]), hex.EncodeToString(c.Account[:4])))
	}
	slices.Sort(devs)
	fmt.Fprintf(&b, "devices %v\n", devs)
	var rem []string
	for a, n := range st.removed {
		rem = append(rem, fmt.Sprintf("%s×%d", hex.EncodeToString(a[:4]), n))
	}
	for d, n := range st.removedDevs {
		rem = append(rem, fmt.Sprintf("dev %016x×%d", d, n))
	}
	slices.Sort(rem)
	fmt.Fprintf(&b, "removed %v\n", rem)
	var cuts []string
	for d, c := range st.cutoffs {
		var ls []string
		for e, l := range c.limits {
			ls = append(ls, fmt.Sprintf("%s:%d", e.String()[:8], l))
		}
		slices.Sort(ls)
		cuts = append(cuts, fmt.Sprintf("%s meta %d msg %d %v", hex.EncodeToString(d[:4]), c.metaTime, c.msgTime, ls))
	}
	slices.Sort(cuts)
	fmt.Fprintf(&b, "cutoffs %v\n", cuts)
	if len(st.epochs) != len(st.epochOrder) {
		fmt.Fprintf(&b, "epochs %d, in order %d\n", len(st.epochs), len(st.epochOrder))
	}
	for _, id := range st.epochOrder {
		ep := st.epochs[id]
		var ms []string
		for d := range ep.members {
			ms = append(ms, fmt.Sprintf("%016x", d))
		}
		slices.Sort(ms)
		creator := "genesis"
		if ep.creator != nil {
			creator = ep.creator.cid.String()
		}
		fmt.Fprintf(&b, "epoch %s parent %s by %s members %v sealed to %v\n", id, ep.parent, creator, ms, ep.sealedTo)
	}
	var invs []string
	for k, inv := range st.invites {
		acct := "-"
		if inv.account != nil {
			acct = hex.EncodeToString(inv.account[:4])
		}
		invs = append(invs, fmt.Sprintf("%s@%s:%s", hex.EncodeToString(k[:4]), inv.epoch.String()[:8], acct))
	}
	slices.Sort(invs)
	fmt.Fprintf(&b, "invites %v\n", invs)
	var app []string
	for _, it := range st.app {
		app = append(app, it.cid.String())
	}
	fmt.Fprintf(&b, "app %v\n", app)
	if own {
		var sh []string
		for e, set := range st.shared {
			for d, n := range set {
				sh = append(sh, fmt.Sprintf("%s:%016x×%d", e.String()[:8], d, n))
			}
		}
		slices.Sort(sh)
		fmt.Fprintf(&b, "shared %v\n", sh)
		var mc []string
		for ref, c := range st.myChains {
			mc = append(mc, fmt.Sprintf("%s@%s:%d:%x", hex.EncodeToString(ref.sender[:4]), ref.epoch.String()[:8], c.start, c.key[:4]))
		}
		slices.Sort(mc)
		fmt.Fprintf(&b, "chains %v\n", mc)
	}
	return b.String()
}

func keysHex(ks []crypto.PublicKey) []string {
	var out []string
	for _, k := range ks {
		out = append(out, hex.EncodeToString(k[:4]))
	}
	return out
}

// checkReplay fails unless g's incremental membership is exactly what a
// replay from scratch of its metadata log gives: the same items in the
// log's order, the same states of both passes, the same verdicts.
func checkReplay(t testing.TB, g *Group, what string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	var logOrder []cid.Cid
	for e, err := range g.meta.Entries(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		logOrder = append(logOrder, e.CID())
	}
	if len(logOrder) != len(g.items) {
		t.Fatalf("%s: %d items, the log holds %d entries", what, len(g.items), len(logOrder))
	}
	for i, it := range g.items {
		if !it.cid.Equals(logOrder[i]) {
			t.Fatalf("%s: item %d is %s, the log's entry %d is %s", what, i, it.cid, i, logOrder[i])
		}
	}
	s1, final, verdicts := replay(g, g.items)
	if got, want := dumpState(g.s1, true), dumpState(s1, true); got != want {
		t.Fatalf("%s: pass 0 differs from a replay\nincremental:\n%s\nreplay:\n%s", what, got, want)
	}
	if got, want := dumpState(g.state, true), dumpState(final, true); got != want {
		t.Fatalf("%s: the state differs from a replay\nincremental:\n%s\nreplay:\n%s", what, got, want)
	}
	pass := 0
	if g.s2 != nil {
		pass = 1
	}
	if (g.s2 == nil) != (final == s1) {
		t.Fatalf("%s: pass 1 state kept %v, replay needs it %v", what, g.s2 != nil, final != s1)
	}
	for i, it := range g.items {
		got, want := fmt.Sprint(it.steps[pass].err), fmt.Sprint(verdicts[i])
		if got != want {
			t.Fatalf("%s: entry %d (%s) verdict %q, replay %q", what, i, it.cid, got, want)
		}
	}
}

// history makes a group live through a random history: joins, messages,
// application metadata, removals and leaves by members with partial views
// of each other (so removals race each other and other entries), and
// entries a removed member backdates below its removal. It returns every
// replica that wrote (members and raw writers).
func history(t *testing.T, rng *rand.Rand, n *net, ops int) (members []*replica, extra []*rawWriter) {
	t.Helper()
	ctx := ctxT(t)
	members = n.create(t, "m0", "m1", "m2")
	usable := func() []*replica {
		var out []*replica
		for _, r := range members {
			if r.g.usable() == nil {
				out = append(out, r)
			}
		}
		return out
	}
	pick := func(rs []*replica) *replica { return rs[rng.IntN(len(rs))] }
	pullAny := func(to, from *replica) { _ = to.g.Receive(ctx, from.name, from.g.Heads()) }
	// snaps are metadata heads members had earlier: a removed member links
	// a backdated entry to them, below its own last entry (and cutoff).
	snaps := map[*replica][]cid.Cid{}
	for range ops {
		live := usable()
		if len(live) == 0 {
			break
		}
		r := pick(live)
		switch op := rng.IntN(22); {
		case op < 3 && len(members) < 9: // join by r's invitation
			inv, err := r.g.Invite(ctx)
			if err != nil {
				continue
			}
			j := &replica{name: fmt.Sprintf("m%d", len(members)), id: newIdentity(t)}
			if rng.IntN(3) == 0 { // another device of r's account
				id, err := NewDevice(r.id.Account, r.id.ContactKey)
				if err != nil {
					t.Fatal(err)
				}
				j.id = id
			}
			if j.g, err = Join(ctx, j.id, inv, n.storage(), r.name, r.g.Heads()); err != nil {
				continue
			}
			t.Cleanup(func() { j.g.Close() })
			members = append(members, j)
		case op < 6:
			_, _ = r.g.Send(ctx, []byte("hi"))
		case op < 7:
			_ = r.g.PutMetadata(ctx, []byte("meta"))
		case op < 8:
			_, _ = r.g.Invite(ctx)
		case op < 10 && len(live) > 2:
			victim := pick(live)
			_ = r.g.RemoveMember(ctx, victim.id.AccountKey())
		case op < 11 && len(live) > 2:
			_ = r.g.Leave(ctx)
		case op >= 20: // r removes another device of its account, if it has one
			for _, m := range live {
				if m != r && m.id.AccountKey() == r.id.AccountKey() {
					_ = r.g.RemoveDevice(ctx, m.id.DeviceKey())
					break
				}
			}
		case op < 12: // a removed member writes, linked below its removal
			var gone []*replica
			for _, m := range members {
				if c := r.g.state.device(m.id.DeviceKey()); r.g.state.isRemoved(m.id.AccountKey()) || c != nil && r.g.state.gone(c) {
					gone = append(gone, m)
				}
			}
			if len(gone) == 0 {
				continue
			}
			m := pick(gone)
			w := newRawWriter(t, n, m.name+"-late", MetaLogID(m.g.ID()), m.id.Device)
			if old := snaps[m]; old != nil && rng.IntN(2) == 0 {
				w.follow(t, old)
			} else {
				w.follow(t, m.g.Heads().Meta)
			}
			ik, _ := crypto.GenerateSigningKey()
			w.appendMeta(t, m.g, &MetaPayload{Type: MetaInvitationCreated, Epoch: m.g.state.latestEpoch(), InviteKey: ik.Public()})
			extra = append(extra, w)
			_ = r.g.Receive(ctx, w.name, Heads{Meta: w.l.Heads()})
		default: // partial sync
			if rng.IntN(4) == 0 {
				snaps[r] = r.g.Heads().Meta
			}
			pullAny(r, pick(members))
		}
	}
	for range 3 {
		for _, a := range members {
			for _, b := range members {
				if a != b {
					pullAny(a, b)
				}
			}
		}
	}
	return members, extra
}

// TestIncrementalMatchesReplay: over random histories (seeds), and random
// arrival orders and partitions of the same metadata entries on several
// replicas (replication nodes, and fresh replicas of a member's device),
// the incremental state after every join is exactly a replay's from
// scratch, every replica ends with every entry, and all end in the same
// state. SKEIN_FOLD_SEEDS sets the number of seeds (default 10).
func TestIncrementalMatchesReplay(t *testing.T) {
	seeds := 10
	if s := os.Getenv("SKEIN_FOLD_SEEDS"); s != "" {
		if _, err := fmt.Sscan(s, &seeds); err != nil {
			t.Fatalf("SKEIN_FOLD_SEEDS=%q: %v", s, err)
		}
	}
	removals := 0
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5ce1))
			n := newNet()
			ctx := ctxT(t)
			members, extra := history(t, rng, n, 45)
			// Every entry anyone wrote, and each writer's own state.
			var all []cid.Cid
			seen := map[string]bool{}
			collect := func(g *Group) {
				for e, err := range g.meta.Entries(ctx) {
					if err != nil {
						t.Fatal(err)
					}
					if k := e.CID().KeyString(); !seen[k] {
						seen[k] = true
						all = append(all, e.CID())
					}
				}
			}
			for _, m := range members {
				checkReplay(t, m.g, m.name)
				collect(m.g)
			}
			for _, w := range extra {
				for _, h := range w.l.Heads() {
					if !seen[h.KeyString()] {
						seen[h.KeyString()] = true
						all = append(all, h)
					}
				}
			}
			if len(members[0].g.state.removed) > 0 {
				removals++
			}

			src := members[0]
			shadowOf := members[rng.IntN(len(members))]
			var final, shadows []string
			for i := range 4 {
				var g *Group
				name := fmt.Sprint("replica ", i)
				if i < 2 {
					g = replicate(t, src.g, n.storage())
				} else {
					// A fresh replica of a member's device: its shares open.
					name = fmt.Sprint("shadow ", i, " of ", shadowOf.name)
					var err error
					if g, err = openGroup(ctx, shadowOf.id, shadowOf.g.kind, shadowOf.g.ID(), nil, n.storage(), nil); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { g.Close() })
					if err := g.setReplicationKey(*shadowOf.g.replKey); err != nil {
						t.Fatal(err)
					}
				}
				order := slices.Clone(all)
				rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
				for len(order) > 0 {
					k := 1 + rng.IntN(min(3, len(order)))
					heads := order[:k]
					order = order[k:]
					_ = g.Receive(ctx, "shuffled", Heads{Meta: heads}) // refusals by the state are expected
					checkReplay(t, g, name)
				}
				if got := g.meta.Len(); got != len(all) {
					t.Fatalf("%s holds %d of %d entries", name, got, len(all))
				}
				g.mu.Lock()
				final = append(final, dumpState(g.state, false))
				if i >= 2 {
					shadows = append(shadows, dumpState(g.state, true))
				}
				g.mu.Unlock()
			}
			for i := 1; i < len(final); i++ {
				if final[i] != final[0] {
					t.Fatalf("replicas end in different states:\n%s\n%s", final[0], final[i])
				}
			}
			if shadows[0] != shadows[1] {
				t.Fatalf("the two replicas of %s's device end in different states:\n%s\n%s", shadowOf.name, shadows[0], shadows[1])
			}
		})
	}
	if removals == 0 {
		t.Fatal("no history removed anyone: the two-pass rule was not exercised")
	}
}
