package log

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// Every replica of a log ends in the same total order whatever order the
// heads arrive in, under each built-in Order, and that order is time, then
// the order's tie-break, then CID.
func TestOrderConvergesUnderRandomArrival(t *testing.T) {
	const writers, perWriter, replicas, trials = 4, 6, 5, 8
	for _, order := range []Order{LamportOrder{}, LamportCIDOrder{}} {
		t.Run(order.Name(), func(t *testing.T) {
			for trial := range trials {
				rng := rand.New(rand.NewPCG(uint64(trial), 7))
				ctx := context.Background()
				blocks := NewMemBlockStore()
				var keys []ed25519.PublicKey
				for w := range writers {
					keys = append(keys, testKey(t, byte(w+1)).Public().(ed25519.PublicKey))
				}
				access := AllowWriters(keys...)
				open := func(signer Signer) *Log {
					l, err := Open(ctx, testLogID, blocks, NewMemKV(), signer, access, WithOrder(order))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { l.Close() })
					return l
				}
				// Writers append concurrently (each on its own replica, so
				// their entries share times) and now and then merge one
				// another's heads; every head set on the way is kept.
				ws := make([]*Log, writers)
				for w := range ws {
					ws[w] = open(NewKeySigner(testKey(t, byte(w+1))))
				}
				var snapshots [][]cid.Cid
				for i := range perWriter {
					for w, l := range ws {
						if _, err := l.Append(ctx, fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
							t.Fatal(err)
						}
						snapshots = append(snapshots, l.Heads())
						if rng.IntN(3) == 0 {
							other := ws[rng.IntN(writers)]
							if _, err := l.Join(ctx, other.Heads(), "peer"); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				var final []cid.Cid
				for _, l := range ws {
					final = append(final, l.Heads()...)
				}
				var want []cid.Cid
				for r := range replicas {
					l := open(nil)
					// A random subset of the snapshots in a random order,
					// then everything.
					for _, i := range rng.Perm(len(snapshots))[:rng.IntN(len(snapshots))] {
						if _, err := l.Join(ctx, snapshots[i], "peer"); err != nil {
							t.Fatal(err)
						}
					}
					shuffled := slices.Clone(final)
					rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
					if _, err := l.Join(ctx, shuffled, "peer"); err != nil {
						t.Fatal(err)
					}
					es := collect(t, l.Entries(ctx))
					if len(es) != writers*perWriter {
						t.Fatalf("replica %d holds %d entries, want %d", r, len(es), writers*perWriter)
					}
					checkOrder(t, order, es)
					got := cids(es)
					if r == 0 {
						want = got
						continue
					}
					if !slices.EqualFunc(got, want, cid.Cid.Equals) {
						t.Fatalf("trial %d: replica %d orders the log otherwise than replica 0", trial, r)
					}
				}
			}
		})
	}
}

// checkOrder fails unless es are sorted by time, then order's tie-break,
// then CID, and every entry comes after those it names.
func checkOrder(t testing.TB, order Order, es []*Entry) {
	t.Helper()
	pos := map[string]int{}
	for i, e := range es {
		pos[e.CID().KeyString()] = i
		for _, n := range e.Next {
			if j, ok := pos[n.KeyString()]; !ok || j >= i {
				t.Fatalf("entry %d comes before an entry it names", i)
			}
		}
		if i == 0 {
			continue
		}
		p := es[i-1]
		if p.Time != e.Time {
			if p.Time > e.Time {
				t.Fatalf("entries %d and %d out of time order", i-1, i)
			}
			continue
		}
		a, b := order.Tiebreak(p), order.Tiebreak(e)
		if c := bytes.Compare(a[:], b[:]); c > 0 || c == 0 && p.CID().KeyString() > e.CID().KeyString() {
			t.Fatalf("entries %d and %d out of %s order", i-1, i, order.Name())
		}
	}
}

// The orders differ: a log of concurrent entries by several writers is
// ordered by writer under "lamport" and by hash under "lamport-cid".
func TestOrdersDiffer(t *testing.T) {
	ctx := context.Background()
	blocks := NewMemBlockStore()
	var heads []cid.Cid
	for w := byte(1); w <= 8; w++ {
		l, err := Open(ctx, testLogID, blocks, NewMemKV(), NewKeySigner(testKey(t, w)), allowAll{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := l.Append(ctx, fmt.Appendf(nil, "%d-%d", w, i)); err != nil {
				t.Fatal(err)
			}
		}
		heads = append(heads, l.Heads()...)
		l.Close()
	}
	orders := map[string][]cid.Cid{}
	for _, o := range []Order{LamportOrder{}, LamportCIDOrder{}} {
		l, err := Open(ctx, testLogID, blocks, NewMemKV(), nil, allowAll{}, WithOrder(o))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Join(ctx, heads, "peer"); err != nil {
			t.Fatal(err)
		}
		es := collect(t, l.Entries(ctx))
		checkOrder(t, o, es)
		orders[o.Name()] = cids(es)
		l.Close()
	}
	if slices.EqualFunc(orders[OrderLamport], orders[OrderLamportCID], cid.Cid.Equals) {
		t.Fatal("the two orders agree on 24 concurrent entries of 8 writers")
	}
}

type allowAll struct{}

func (allowAll) CanWrite(context.Context, *Entry) error { return nil }

// A log keeps its order: reopened with another it fails with
// ErrOrderMismatch, with the same it reads its index as written.
func TestOrderPersisted(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name          string
		written, open Order // nil: no WithOrder
		entries       bool
		wantErr       error
	}{
		{"default reopened as default", nil, nil, true, nil},
		{"default reopened as explicit lamport", nil, LamportOrder{}, true, nil},
		{"lamport-cid reopened as lamport-cid", LamportCIDOrder{}, LamportCIDOrder{}, true, nil},
		{"lamport-cid reopened as default", LamportCIDOrder{}, nil, true, ErrOrderMismatch},
		{"lamport-cid reopened as lamport", LamportCIDOrder{}, LamportOrder{}, true, ErrOrderMismatch},
		{"lamport-cid reopened empty as default", LamportCIDOrder{}, nil, false, ErrOrderMismatch},
		{"default reopened as lamport-cid", nil, LamportCIDOrder{}, true, ErrOrderMismatch},
		{"empty default reopened as lamport-cid", nil, LamportCIDOrder{}, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := func(o Order) []Option {
				if o == nil {
					return nil
				}
				return []Option{WithOrder(o)}
			}
			blocks, kv := NewMemBlockStore(), NewMemKV()
			var before []cid.Cid
			if tc.entries {
				// Two writers' concurrent entries, joined into one log.
				other, err := Open(ctx, testLogID, blocks, NewMemKV(), NewKeySigner(testKey(t, 2)), allowAll{})
				if err != nil {
					t.Fatal(err)
				}
				for i := range 4 {
					mustAppend(t, other, fmt.Sprint("b", i))
				}
				l, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(testKey(t, 1)), allowAll{}, opt(tc.written)...)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 4 {
					mustAppend(t, l, fmt.Sprint("a", i))
				}
				if _, err := l.Join(ctx, other.Heads(), "peer"); err != nil {
					t.Fatal(err)
				}
				before = cids(collect(t, l.Entries(ctx)))
				l.Close()
				other.Close()
			} else {
				l, err := Open(ctx, testLogID, blocks, kv, nil, allowAll{}, opt(tc.written)...)
				if err != nil {
					t.Fatal(err)
				}
				l.Close()
			}
			l, err := Open(ctx, testLogID, blocks, kv, nil, allowAll{}, opt(tc.open)...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("reopen: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer l.Close()
			got := cids(collect(t, l.Entries(ctx)))
			if !slices.EqualFunc(got, before, cid.Cid.Equals) {
				t.Fatal("the reopened log reads another order")
			}
			for i, c := range got {
				if p, err := l.Position(ctx, c); err != nil || p != i {
					t.Fatalf("position of entry %d: %d, %v", i, p, err)
				}
			}
		})
	}
}

func TestOrderByName(t *testing.T) {
	for _, name := range []string{OrderLamport, OrderLamportCID} {
		o, err := OrderByName(name)
		if err != nil || o.Name() != name {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := OrderByName("vector-clock"); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("unknown order: %v", err)
	}
	if _, err := Open(context.Background(), testLogID, NewMemBlockStore(), NewMemKV(), nil, allowAll{}, WithOrder(nil)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil order: %v", err)
	}
}
