package messenger_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// refusingPuts is a network whose blockstore takes nothing while refuse is
// set: what a node sees of a network that had not stored an acknowledged
// message's block when the node died (a network plugin out of process,
// killed or restarting).
type refusingPuts struct {
	sdk.Network
	refuse *atomic.Bool
}

func (n refusingPuts) PutBlocks(ctx context.Context, blocks []sdk.Block) error {
	if n.refuse.Load() {
		return errors.New("network plugin restarting")
	}
	return n.Network.PutBlocks(ctx, blocks)
}

// An acknowledged message is durable with its block in the store alone: a
// node whose network never stored the blocks of the messages it sent
// (their sends were acknowledged all the same) puts them into the
// network when it opens again, and a member that was offline gets them
// from it.
func TestAcknowledgedMessageSurvivesLostBlock(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	refuse := new(atomic.Bool)
	a := newTestNodeWith(t, sn, "a", func(cfg *messenger.Config) {
		cfg.Network = refusingPuts{Network: cfg.Network, refuse: refuse}
	})
	c := newTestNode(t, sn, "c")
	sn.ConnectAll()
	gi, err := a.m.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := a.m.Invite(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.m.JoinGroup(ctx, inv.Token(), "g"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c is a member", func() bool { ms, err := a.m.Members("g"); return err == nil && len(ms) == 2 })
	if err := c.m.Close(); err != nil {
		t.Fatal(err)
	}

	refuse.Store(true)
	const n = 5
	var sent []*sdk.Block
	for i := range n {
		msg, err := a.m.Send(ctx, "g", fmt.Appendf(nil, "acknowledged %d", i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent = append(sent, &sdk.Block{CID: msg.CID.Bytes()})
	}
	for _, b := range sent {
		if ok, _ := a.net.HasBlock(ctx, b.CID); ok {
			t.Fatal("the network holds a block it refused")
		}
	}
	// The node stops with the blocks still unplaced, and comes back
	// over a network that works.
	if err := a.m.Close(); err != nil {
		t.Fatal(err)
	}
	refuse.Store(false)
	a.start(t)
	waitFor(t, "the sent blocks placed in the network", func() bool {
		for _, b := range sent {
			if ok, _ := a.net.HasBlock(ctx, b.CID); !ok {
				return false
			}
		}
		return true
	})
	c.start(t)
	waitFor(t, "c has every acknowledged message", func() bool {
		return len(bodies(t, c, gi.ID.String())) == n
	})
}
