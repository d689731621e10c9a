package group

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// recordingBlocks is a block store that keeps every block ever put: what a
// CID holder can fetch by bitswap from any member (entries are plain IPFS
// blocks).
type recordingBlocks struct {
	*log.MemBlockStore
	mu  sync.Mutex
	all [][]byte
}

func (r *recordingBlocks) Put(ctx context.Context, c cid.Cid, data []byte) error {
	r.mu.Lock()
	r.all = append(r.all, bytes.Clone(data))
	r.mu.Unlock()
	return r.MemBlockStore.Put(ctx, c, data)
}

// TestBlocksNameNoAccount: a party holding every block of a group's two
// logs, but not the replication key, finds in them no account key, no
// device certificate or agreement key, no invitation key, no epoch id
// besides genesis, not the group's key, and no payload it can decode. The
// group has lived through joins, messages, application metadata, an
// unused invitation, a removal, a leave and the rekey after it. What it
// does see is each entry's writer device key (and time, links and size).
// With payloads in clear (version 1) every device certificate named its
// account.
func TestBlocksNameNoAccount(t *testing.T) {
	rec := &recordingBlocks{MemBlockStore: log.NewMemBlockStore()}
	n := &net{blocks: rec}
	rs := n.create(t, "alice", "bob", "carol", "dave", "erin")
	a, b, d, e := rs[0], rs[1], rs[3], rs[4]
	ctx := ctxT(t)
	for _, r := range rs {
		send(t, r, "hello from "+r.name)
	}
	syncAll(t, rs...)
	if err := a.g.PutMetadata(ctx, []byte("topic: plans")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.g.Invite(ctx); err != nil { // never used
		t.Fatal(err)
	}
	if err := a.g.RemoveMember(ctx, d.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	syncAll(t, rs...)
	if err := e.g.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	syncAll(t, a, b, rs[2], e)
	send(t, b, "after the leave") // rekeys first: erin had the epoch secret
	syncAll(t, a, b, rs[2])

	secret := map[string][]byte{"group key": a.g.ID().Bytes()}
	for _, r := range rs {
		secret[r.name+"'s account key"] = r.id.AccountKey().Bytes()
		secret[r.name+"'s device agreement key"] = r.id.Cert.DeviceX25519[:]
		cert, _ := r.id.Cert.MarshalBinary()
		secret[r.name+"'s device certificate signature"] = cert[len(cert)-crypto.SignatureSize:]
	}
	st := a.g.state
	for k := range st.invites {
		secret["invitation key "+k.Fingerprint()] = k.Bytes()
	}
	if len(st.invites) < 5 {
		t.Fatalf("%d invitations in the state, want at least 5", len(st.invites))
	}
	for _, id := range st.epochOrder[1:] {
		secret["epoch id "+id.String()] = id[:]
	}
	if len(st.epochOrder) < 3 {
		t.Fatalf("%d epochs, want at least 3 (genesis, removal, leave)", len(st.epochOrder))
	}

	rec.mu.Lock()
	blocks := rec.all
	rec.mu.Unlock()
	if len(blocks) < 30 {
		t.Fatalf("only %d blocks recorded", len(blocks))
	}
	var writers []crypto.PublicKey
	for _, blk := range blocks {
		for what, s := range secret {
			if bytes.Contains(blk, s) {
				t.Errorf("a block holds %s in the clear", what)
			}
		}
		en, err := log.DecodeEntry(blk)
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, pub(en.Writer))
		if p, err := DecodeMetaPayload(en.Payload); err == nil {
			t.Errorf("a payload decodes without the key: %+v", p)
		}
		if p, err := DecodeMetaPayload(en.Payload[1:]); err == nil {
			t.Errorf("a payload decodes without the key: %+v", p)
		}
	}
	// What the blocks do show: who wrote (device keys), as documented.
	for _, r := range rs {
		if !containsKey(writers, r.id.DeviceKey()) {
			t.Errorf("%s's device key is not among the writers", r.name)
		}
	}

	// A replica opened with a wrong replication key admits nothing and
	// learns no member; with the right one it checks and serves the logs.
	wrong, err := Replicate(ctx, a.g.ID(), crypto.RandomKey(), n.storage())
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.Receive(ctx, "alice", a.g.Heads()); !errors.Is(err, ErrMalformedPayload) {
		t.Fatalf("replica with a wrong key: %v, want ErrMalformedPayload", err)
	}
	if wrong.meta.Len() != 0 || len(wrong.Members()) != 0 {
		t.Fatalf("replica with a wrong key holds %d entries, %d members", wrong.meta.Len(), len(wrong.Members()))
	}
	right := replicate(t, a.g, n.storage())
	if err := right.Receive(ctx, "alice", a.g.Heads()); err != nil {
		t.Fatal(err)
	}
	if got, want := len(right.Members()), len(a.g.Members()); got != want || got != 3 {
		t.Fatalf("replication node sees %d members, alice %d; want 3", got, want)
	}
}
