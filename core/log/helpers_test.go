package log

import (
	"context"
	"crypto/ed25519"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

const testLogID = "test-log"

// testKey returns a deterministic Ed25519 key for seed.
func testKey(tb testing.TB, seed byte) ed25519.PrivateKey {
	tb.Helper()
	var s [32]byte
	s[0] = seed
	s[31] = 0x5a
	return ed25519.NewKeyFromSeed(s[:])
}

type replica struct {
	log    *Log
	blocks *MemBlockStore
	kv     *MemKV
	key    ed25519.PrivateKey
}

// newReplica opens a fresh in-memory log writing with key seed; access
// defaults to allowing writer seeds 1..8.
func newReplica(tb testing.TB, seed byte, access AccessController, opts ...Option) *replica {
	tb.Helper()
	if access == nil {
		var keys []ed25519.PublicKey
		for s := byte(1); s <= 8; s++ {
			keys = append(keys, testKey(tb, s).Public().(ed25519.PublicKey))
		}
		access = AllowWriters(keys...)
	}
	r := &replica{blocks: NewMemBlockStore(), kv: NewMemKV(), key: testKey(tb, seed)}
	l, err := Open(context.Background(), testLogID, r.blocks, r.kv, NewKeySigner(r.key), access, opts...)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	r.log = l
	return r
}

func mustAppend(tb testing.TB, l *Log, payload string) *Entry {
	tb.Helper()
	e, err := l.Append(context.Background(), []byte(payload))
	if err != nil {
		tb.Fatalf("append %q: %v", payload, err)
	}
	return e
}

// collect returns the entries an iteration yields, failing on error.
func collect(tb testing.TB, seq iter.Seq2[*Entry, error]) []*Entry {
	tb.Helper()
	var out []*Entry
	for e, err := range seq {
		if err != nil {
			tb.Fatalf("iterate: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func cids(es []*Entry) []cid.Cid {
	out := make([]cid.Cid, len(es))
	for i, e := range es {
		out[i] = e.CID()
	}
	return out
}

func payloads(es []*Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Payload)
	}
	return out
}

// craft builds an entry of testLogID signed by key, for attack tests; mutate
// runs before signing (so the signature covers the change).
func craft(tb testing.TB, key ed25519.PrivateKey, payload string, t uint64, next []cid.Cid, mutate func(*Entry)) *Entry {
	tb.Helper()
	e := &Entry{ID: testLogID, Payload: []byte(payload), Time: t, Next: slices.Clone(next)}
	slices.SortFunc(e.Next, compareCID)
	if e.Next == nil {
		e.Next = []cid.Cid{}
	}
	if mutate != nil {
		mutate(e)
	}
	if err := sealEntry(e, NewKeySigner(key)); err != nil {
		tb.Fatalf("craft entry: %v", err)
	}
	return e
}

// reencode recomputes raw and CID after a post-signing modification.
func reencode(e *Entry) *Entry {
	e.raw = appendEncoding(nil, e, true)
	e.cid = blockCID(e.raw)
	return e
}

// putAll stores the entries' blocks in s.
func putAll(tb testing.TB, s BlockStore, es ...*Entry) {
	tb.Helper()
	for _, e := range es {
		if err := s.Put(context.Background(), e.CID(), e.Bytes()); err != nil {
			tb.Fatalf("put: %v", err)
		}
	}
}

// rejectionFor returns the rejection of c, failing if there is none.
func rejectionFor(tb testing.TB, res JoinResult, c cid.Cid) Rejection {
	tb.Helper()
	for _, r := range res.Rejected {
		if r.CID.Equals(c) {
			return r
		}
	}
	tb.Fatalf("no rejection for %s among %v", c, res.Rejected)
	return Rejection{}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
