package group

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// localReads counts the KV reads of delivered copies, and can hide the
// delivery summary (a data directory from before summaries).
type localReads struct {
	log.KV
	mu          sync.Mutex
	prefix      []byte
	reads       int
	hideSummary []byte
}

func (k *localReads) note(key []byte) {
	if bytes.HasPrefix(key, k.prefix) {
		k.mu.Lock()
		k.reads++
		k.mu.Unlock()
	}
}

func (k *localReads) Get(ctx context.Context, key []byte) ([]byte, error) {
	k.note(key)
	if k.hideSummary != nil && bytes.Equal(key, k.hideSummary) {
		return nil, log.ErrNotFound
	}
	return k.KV.Get(ctx, key)
}

func (k *localReads) Query(ctx context.Context, q log.KVQuery) iter.Seq2[log.KVPair, error] {
	return func(yield func(log.KVPair, error) bool) {
		for p, err := range k.KV.Query(ctx, q) {
			if err == nil {
				k.note(p.Key)
			}
			if !yield(p, err) {
				return
			}
		}
	}
}

func (k *localReads) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reads
}

// restoredState is what restore rebuilds, for comparing a reopen from a
// summary with one that reads every delivered copy.
type restoredState struct {
	bodies  []string
	send    map[EpochID]uint64
	stats   map[crypto.PublicKey]string
	pending []string
}

func stateOf(t testing.TB, g *Group) restoredState {
	t.Helper()
	s := restoredState{bodies: bodies(t, g), send: map[EpochID]uint64{}, stats: map[crypto.PublicKey]string{}}
	g.mu.Lock()
	defer g.mu.Unlock()
	for e, c := range g.sendChains {
		s.send[e], _ = c.Share()
	}
	for k, ws := range g.stats {
		es := slices.SortedFunc(maps.Keys(ws.limits), func(a, b EpochID) int { return bytes.Compare(a[:], b[:]) })
		str := fmt.Sprint(ws.maxTime)
		for _, e := range es {
			str += fmt.Sprintf(" %x:%d", e[:4], ws.limits[e])
		}
		s.stats[k] = str
	}
	for k := range g.pendingMsgs {
		s.pending = append(s.pending, k)
	}
	slices.Sort(s.pending)
	return s
}

func sameState(a, b restoredState) bool {
	return slices.Equal(a.bodies, b.bodies) && maps.Equal(a.send, b.send) && maps.Equal(a.stats, b.stats) && slices.Equal(a.pending, b.pending)
}

// crash drops g as a killed process would: its logs stop, nothing more
// is written (no delivery summary).
func crash(g *Group) {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	_ = g.meta.Close()
	_ = g.msgs.Close()
}

// Reopening after a clean Close reads no delivered copy (the delivery
// summary says what they told) and gives the same state as reading them
// all; after a crash at any point, or with a summary that is out of date,
// Open reads them all, so nothing delivered or waiting is lost.
func TestReopenWithDeliverySummary(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stop ends bob's group after the shared history; it returns
		// whether a summary is expected at the next Open.
		stop func(t *testing.T, a, b *replica, ks *crypto.Keystore, st Storage) bool
	}{
		{"clean close after saving keys", func(t *testing.T, a, b *replica, ks *crypto.Keystore, _ Storage) bool {
			if err := b.g.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			if err := b.g.Close(); err != nil {
				t.Fatal(err)
			}
			return true
		}},
		{"crash after sending, keys saved", func(t *testing.T, a, b *replica, ks *crypto.Keystore, _ Storage) bool {
			if err := b.g.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			send(t, b, "after the save")
			crash(b.g)
			return false
		}},
		{"close with a message received after the keys were saved", func(t *testing.T, a, b *replica, ks *crypto.Keystore, _ Storage) bool {
			if err := b.g.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			send(t, a, "after the save")
			pull(t, b, a)
			if err := b.g.Close(); err != nil {
				t.Fatal(err)
			}
			return false
		}},
		{"summary out of date: the log grew after it, then a crash", func(t *testing.T, a, b *replica, ks *crypto.Keystore, st Storage) bool {
			ctx := ctxT(t)
			if err := b.g.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			if err := b.g.Close(); err != nil {
				t.Fatal(err)
			}
			old, err := st.KV.Get(ctx, b.g.summaryKey())
			if err != nil {
				t.Fatalf("no summary after a clean close: %v", err)
			}
			g, err := Open(ctx, b.id, ks, b.g.ID(), st)
			if err != nil {
				t.Fatal(err)
			}
			b.g = g
			send(t, a, "while the summary was out")
			pull(t, b, a)
			send(t, b, "mine, while the summary was out")
			if err := g.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			crash(g)
			// As if the summary had been read but not deleted.
			if err := st.KV.Put(ctx, b.g.summaryKey(), old); err != nil {
				t.Fatal(err)
			}
			return true // present, but Open must not use it
		}},
		{"crash right after an open that took the summary", func(t *testing.T, a, b *replica, ks *crypto.Keystore, st Storage) bool {
			if err := b.g.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			if err := b.g.Close(); err != nil {
				t.Fatal(err)
			}
			g, err := Open(ctxT(t), b.id, ks, b.g.ID(), st)
			if err != nil {
				t.Fatal(err)
			}
			crash(g)
			b.g = g
			return false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			n := newNet()
			stA, stB := n.storage(), n.storage()
			a, b := n.pair(t, stA, stB)
			for i := range 20 {
				send(t, a, fmt.Sprintf("a%d", i))
				send(t, b, fmt.Sprintf("b%d", i))
			}
			syncAll(t, a, b)
			ks := testKeystore(t)
			summaryWanted := tc.stop(t, a, b, ks, stB)
			_, err := stB.KV.Get(ctx, b.g.summaryKey())
			if has := err == nil; has != summaryWanted {
				t.Fatalf("a summary is stored: %v, want %v (%v)", has, summaryWanted, err)
			}

			// The reference: every delivered copy read (the summary hidden).
			kvFull := &localReads{KV: stB.KV, prefix: b.g.localPrefix(), hideSummary: b.g.summaryKey()}
			full, err := Open(ctx, b.id, ks, b.g.ID(), Storage{Blocks: stB.Blocks, KV: kvFull})
			if err != nil {
				t.Fatal(err)
			}
			want := stateOf(t, full)
			crash(full)
			if kvFull.count() == 0 {
				t.Fatal("the full restore read no delivered copy")
			}

			kv := &localReads{KV: stB.KV, prefix: b.g.localPrefix()}
			g, err := Open(ctx, b.id, ks, b.g.ID(), Storage{Blocks: stB.Blocks, KV: kv})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			reads := kv.count()
			if _, err := stB.KV.Get(ctx, g.summaryKey()); !errors.Is(err, log.ErrNotFound) {
				t.Fatalf("the summary is still stored after Open: %v", err)
			}
			if got := stateOf(t, g); !sameState(got, want) {
				t.Fatalf("reopened state differs from a full restore:\n got %+v\nwant %+v", got, want)
			}
			if len(want.bodies) < 40 {
				t.Fatalf("%d messages after reopening, want at least 40", len(want.bodies))
			}
			usable := tc.name == "clean close after saving keys"
			if usable && reads != 0 {
				t.Fatalf("Open read %d delivered copies with a summary, want none", reads)
			}
			if !usable && reads == 0 {
				t.Fatal("Open read no delivered copy without a usable summary")
			}
			// And the group goes on: bob sends, alice reads it (bob's
			// chain went past every index he used).
			b.g = g
			send(t, b, "after reopening")
			pull(t, a, b)
			if got := bodies(t, a.g); !slices.Contains(got, "after reopening") {
				t.Fatalf("alice cannot read bob's message after his reopen: %q", got[max(0, len(got)-3):])
			}
		})
	}
}

// A data directory from before delivery summaries (none stored) opens by
// reading every delivered copy, and its next clean close writes one. (Its
// listing reads more than 2*localQueryMin copies: the first localQueryMin
// one by one, the rest in one query.)
func TestOldDataDirWithoutSummary(t *testing.T) {
	ctx := ctxT(t)
	n := newNet()
	stA, stB := n.storage(), n.storage()
	a, b := n.pair(t, stA, stB)
	for i := range 2*localQueryMin + 44 {
		send(t, a, fmt.Sprintf("a%d", i))
	}
	syncAll(t, a, b)
	ks := testKeystore(t)
	if err := b.g.SaveKeys(ks); err != nil {
		t.Fatal(err)
	}
	before := bodies(t, b.g)
	crash(b.g) // no summary, as an old version left it
	kv := &localReads{KV: stB.KV, prefix: b.g.localPrefix()}
	g, err := Open(ctx, b.id, ks, b.g.ID(), Storage{Blocks: stB.Blocks, KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	// The newest message alone reads one copy.
	reads := kv.count()
	for m, err := range g.Messages(ctx, Reverse()) {
		if err != nil || string(m.Body) != before[len(before)-1] {
			t.Fatalf("newest message %v, %v; want %q", m, err, before[len(before)-1])
		}
		break
	}
	if n := kv.count() - reads; n != 1 {
		t.Fatalf("listing the newest message read %d copies, want 1", n)
	}
	if got := bodies(t, g); len(before) != 2*localQueryMin+44 || !slices.Equal(got, before) {
		t.Fatalf("reopened old data dir lists %d messages, want the %d listed before", len(got), len(before))
	}
	if err := g.SaveKeys(ks); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := stB.KV.Get(ctx, g.summaryKey()); err != nil {
		t.Fatalf("no summary after the first clean close: %v", err)
	}
}
