package messenger

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// A block nobody serves must fail alone: core/log marks it missing and
// keeps the others, instead of the whole join stopping.
func TestNetworkBlocksMissingBlockFailsAlone(t *testing.T) {
	sn := simnet.New()
	defer sn.Close()
	nd, err := sn.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(data string) cid.Cid {
		h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		return cid.NewCidV1(cid.DagCBOR, h)
	}
	have, missing := mk("have"), mk("missing")
	if err := nd.PutBlocks(context.Background(), []sdk.Block{{CID: have.Bytes(), Data: []byte("have")}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got := map[cid.Cid]error{}
	for b, err := range (networkBlocks{nd}).GetMany(ctx, []cid.Cid{missing, have}) {
		if !b.CID.Defined() {
			t.Fatalf("result without a cid (err %v): the whole fetch would stop", err)
		}
		got[b.CID] = err
	}
	tests := []struct {
		name    string
		c       cid.Cid
		wantErr bool
	}{
		{"local block", have, false},
		{"block nobody serves", missing, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err, ok := got[tc.c]
			if !ok {
				t.Fatal("no result")
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// A read without a deadline of a block nobody serves ends with an error
// instead of hanging (it used to hang a node's start after a crash).
func TestNetworkBlocksGetWithoutDeadlineEnds(t *testing.T) {
	old := blockGetTimeout
	blockGetTimeout = 100 * time.Millisecond
	defer func() { blockGetTimeout = old }()
	sn := simnet.New()
	defer sn.Close()
	nd, err := sn.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	h, err := multihash.Sum([]byte("nobody has this"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (networkBlocks{nd}).Get(context.Background(), cid.NewCidV1(cid.DagCBOR, h))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a block nobody has was returned")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Get without a deadline did not end")
	}
}
