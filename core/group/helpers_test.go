package group

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// net is a test network: one shared in-memory block store, so a replica
// fetches what another appended by calling Receive with its heads.
type net struct {
	blocks log.BlockStore
}

func newNet() *net { return &net{blocks: log.NewMemBlockStore()} }

func (n *net) storage() Storage { return Storage{Blocks: n.blocks, KV: log.NewMemKV()} }

type replica struct {
	name string
	id   *Identity
	g    *Group
}

func newIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// create makes a multi-member group with n members: the first creates it,
// each other is invited and joins; all replicas are synced.
func (n *net) create(t testing.TB, names ...string) []*replica {
	t.Helper()
	ctx := ctxT(t)
	var rs []*replica
	for i, name := range names {
		r := &replica{name: name, id: newIdentity(t)}
		if i == 0 {
			g, err := Create(ctx, r.id, n.storage())
			if err != nil {
				t.Fatal(err)
			}
			r.g = g
		} else {
			inv, err := rs[0].g.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Join(ctx, r.id, inv, n.storage(), rs[0].name, rs[0].g.Heads())
			if err != nil {
				t.Fatalf("%s joins: %v", name, err)
			}
			r.g = g
		}
		t.Cleanup(func() { r.g.Close() })
		rs = append(rs, r)
		syncAll(t, rs...)
	}
	return rs
}

// pair makes a group of alice (its creator, storing in stA) and bob
// (storing in stB), synced.
func (n *net) pair(t testing.TB, stA, stB Storage) (a, b *replica) {
	t.Helper()
	ctx := ctxT(t)
	alice, bob := newIdentity(t), newIdentity(t)
	ga, err := Create(ctx, alice, stA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ga.Close() })
	inv, err := ga.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := Join(ctx, bob, inv, stB, "alice", ga.Heads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gb.Close() })
	a, b = &replica{"alice", alice, ga}, &replica{"bob", bob, gb}
	syncAll(t, a, b)
	return a, b
}

// pull makes to receive from's heads and fails on any rejection.
func pull(t testing.TB, to, from *replica) {
	t.Helper()
	if err := to.g.Receive(ctxT(t), from.name, from.g.Heads()); err != nil {
		t.Fatalf("%s receives from %s: %v", to.name, from.name, err)
	}
}

// syncAll exchanges heads between every pair until nothing changes (chain
// key shares written in answer to new members need a second round).
func syncAll(t testing.TB, rs ...*replica) {
	t.Helper()
	for round := 0; round < 3; round++ {
		for _, a := range rs {
			for _, b := range rs {
				if a != b {
					pull(t, a, b)
				}
			}
		}
	}
}

func bodies(t testing.TB, g *Group) []string {
	t.Helper()
	var out []string
	for m, err := range g.Messages(ctxT(t)) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m.Body))
	}
	return out
}

func send(t testing.TB, r *replica, body string) *Message {
	t.Helper()
	m, err := r.g.Send(ctxT(t), []byte(body))
	if err != nil {
		t.Fatalf("%s sends %q: %v", r.name, body, err)
	}
	return m
}

// allowAll lets an attacker's raw log accept anything, so it can build on
// the group's entries and append what the group must refuse.
type allowAll struct{}

func (allowAll) CanWrite(context.Context, *log.Entry) error { return nil }

// rawWriter is an attacker's (or a misbehaving member's) direct access to a
// group log: it bypasses every check of the group layer.
type rawWriter struct {
	name string
	dev  crypto.PublicKey
	l    *log.Log
}

func newRawWriter(t testing.TB, n *net, name, logID string, dev *crypto.DeviceKey) *rawWriter {
	t.Helper()
	seed := dev.Signing().Seed()
	l, err := log.Open(ctxT(t), logID, n.blocks, log.NewMemKV(), log.NewKeySigner(ed25519.NewKeyFromSeed(seed)), allowAll{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &rawWriter{name: name, dev: dev.Signing().Public(), l: l}
}

// follow brings the raw log up to the heads of a replica's log.
func (w *rawWriter) follow(t testing.TB, heads ...[]cid.Cid) {
	t.Helper()
	for _, h := range heads {
		if _, err := w.l.Join(ctxT(t), h, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *rawWriter) append(t testing.TB, payload []byte) *log.Entry {
	t.Helper()
	e, err := w.l.Append(ctxT(t), payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// appendMeta appends p, sealed as g's group seals metadata.
func (w *rawWriter) appendMeta(t testing.TB, g *Group, p *MetaPayload) *log.Entry {
	t.Helper()
	return w.append(t, sealedMeta(t, g, w.dev, p))
}

// expectRejected checks that err is a *RejectedError naming cid with a
// reason wrapping want.
func expectRejected(t testing.TB, err error, want error) *RejectedError {
	t.Helper()
	var re *RejectedError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a *RejectedError wrapping %v", err, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want a rejection wrapping %v", err, want)
	}
	return re
}

func mustMarshal(t testing.TB, p interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealedMeta is the payload a writer's metadata entry of g's group carries
// for p: sealed as the group seals it (whoever holds the replication key,
// e.g. from an invitation, can build one).
func sealedMeta(t testing.TB, g *Group, writer crypto.PublicKey, p *MetaPayload) []byte {
	t.Helper()
	b, err := sealMeta(g.keys, g.id, writer, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replicate opens a replication node's replica of g's group.
func replicate(t testing.TB, g *Group, st Storage) *Group {
	t.Helper()
	key, err := g.ReplicationKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Replicate(ctxT(t), g.ID(), key, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func fp(k crypto.PublicKey) string { return fmt.Sprintf("%s", k.Fingerprint()) }
