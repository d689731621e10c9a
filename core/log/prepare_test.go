package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// PrepareJoin fetches and checks without adding; Commit adds against the
// log as it is then, once.
func TestPrepareJoinThenCommit(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// meanwhile runs between PrepareJoin and Commit on the joining log.
		meanwhile func(t *testing.T, v *replica, src *replica)
		wantAdded int // of the 5 prepared entries
		wantErr   error
	}{
		{name: "nothing meanwhile", wantAdded: 5},
		{name: "a local append meanwhile", meanwhile: func(t *testing.T, v, _ *replica) {
			mustAppend(t, v.log, "local")
		}, wantAdded: 5},
		{name: "another join added them meanwhile", meanwhile: func(t *testing.T, v, src *replica) {
			if _, err := v.log.Join(ctx, src.log.Heads(), "other", FetchFrom(src.blocks)); err != nil {
				t.Fatal(err)
			}
		}, wantAdded: 0},
		{name: "another join added some meanwhile", meanwhile: func(t *testing.T, v, src *replica) {
			first := collect(t, src.log.Entries(ctx))[1]
			if _, err := v.log.Join(ctx, []cid.Cid{first.CID()}, "other", FetchFrom(src.blocks)); err != nil {
				t.Fatal(err)
			}
		}, wantAdded: 3},
		{name: "log closed meanwhile", meanwhile: func(t *testing.T, v, _ *replica) {
			v.log.Close()
		}, wantErr: ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newReplica(t, 1, nil)
			for i := range 5 {
				mustAppend(t, src.log, fmt.Sprint(i))
			}
			v := newReplica(t, 2, nil)
			p, err := v.log.PrepareJoin(ctx, src.log.Heads(), "src", FetchFrom(src.blocks))
			if err != nil {
				t.Fatal(err)
			}
			if v.log.Len() != 0 {
				t.Fatalf("PrepareJoin added %d entries", v.log.Len())
			}
			if tt.meanwhile != nil {
				tt.meanwhile(t, v, src)
			}
			res, err := p.Commit(ctx)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Commit: err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(res.Rejected) != 0 || len(res.Added) != tt.wantAdded {
				t.Fatalf("Commit: added %d rejected %d err %v, want %d added", len(res.Added), len(res.Rejected), err, tt.wantAdded)
			}
			// Every source entry is in the log exactly once.
			got := cids(collect(t, v.log.Entries(ctx)))
			for _, e := range collect(t, src.log.Entries(ctx)) {
				if n := len(slices.DeleteFunc(slices.Clone(got), func(c cid.Cid) bool { return !c.Equals(e.CID()) })); n != 1 {
					t.Fatalf("entry %q is in the log %d times", e.Payload, n)
				}
			}
			if _, err := p.Commit(ctx); !errors.Is(err, ErrJoinCommitted) {
				t.Fatalf("second Commit: err = %v, want ErrJoinCommitted", err)
			}
		})
	}
}

// A prepared join that fetched a forged entry still reports it at Commit,
// and keeps the good entries.
func TestPrepareJoinReportsRejectionsAtCommit(t *testing.T) {
	ctx := context.Background()
	s := newAttack(t)
	forged := craft(t, testKey(t, 9), "forged", 4, []cid.Cid{s.chain[2].CID()}, nil)
	forged.Writer = testKey(t, 1).Public().(ed25519.PublicKey)
	reencode(forged)
	s.m.add(t, forged)
	p, err := s.v.log.PrepareJoin(ctx, []cid.Cid{forged.CID()}, "mallory", FetchFrom(s.m.blocks))
	if err != nil {
		t.Fatal(err)
	}
	// Entries lists what may be added: the good entries fetched, not the
	// forged one.
	listed := cids(p.Entries())
	if slices.ContainsFunc(listed, forged.CID().Equals) || len(listed) == 0 {
		t.Fatalf("Entries lists %v (forged %s)", listed, forged.CID())
	}
	res, err := p.Commit(ctx)
	expectRejected(t, s, res, err, s.chain, map[cid.Cid]error{forged.CID(): ErrBadSignature})
	for _, c := range listed {
		if !slices.ContainsFunc(res.Added, func(e *Entry) bool { return e.CID().Equals(c) }) {
			t.Fatalf("Entries listed %s, which Commit did not add", c)
		}
	}
}
