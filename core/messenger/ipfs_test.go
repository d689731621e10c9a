package messenger_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/sdk"
)

// TestThreeMessengersOverIPFS runs the messenger over the real network
// plugin (libp2p, gossipsub, bitswap) linked in, on loopback.
func TestThreeMessengersOverIPFS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the messenger over libp2p")
	}
	ctx := context.Background()
	var nets []*ipfs.Network
	var ms []*messenger.Messenger
	for i := range 3 {
		n := startIPFS(t, map[string]any{"dht_mode": "off"})
		nets = append(nets, n)
		ms = append(ms, ipfsMessenger(t, i, n))
	}
	for i := range nets {
		for j := i + 1; j < len(nets); j++ {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := nets[i].Connect(cctx, sdk.PeerInfo{ID: nets[j].PeerID(), Addrs: nets[j].Addrs()})
			cancel()
			if err != nil {
				t.Fatalf("connect %d-%d: %v", i, j, err)
			}
		}
	}
	gi, err := ms[0].CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	ref := gi.ID.String()
	for _, m := range ms[1:] {
		inv, err := ms[0].Invite(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		jctx, cancel := context.WithTimeout(ctx, waitLimit)
		_, err = m.JoinGroup(jctx, inv.Token(), "g")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range ms {
		waitFor(t, fmt.Sprintf("node %d sees 3 members", i), func() bool {
			mb, err := m.Members(ref)
			return err == nil && len(mb) == 3
		})
	}
	const perNode = 3
	for round := range perNode {
		for i, m := range ms {
			if _, err := m.Send(ctx, ref, fmt.Appendf(nil, "r%d n%d", round, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	order := func(m *messenger.Messenger) []string {
		msgs, err := m.Messages(ctx, ref, messenger.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range msgs {
			out = append(out, x.CID.String())
		}
		return out
	}
	for i, m := range ms {
		waitFor(t, fmt.Sprintf("node %d has all messages", i), func() bool { return len(order(m)) == 3*perNode })
	}
	first := order(ms[0])
	for i, m := range ms[1:] {
		if o := order(m); !slices.Equal(o, first) {
			t.Fatalf("node %d order differs:\n%v\n%v", i+1, o, first)
		}
	}
}
