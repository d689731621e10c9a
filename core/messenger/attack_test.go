package messenger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/internal/logtest"
	"github.com/skein-p2p/skein/sdk"
)

// Peers that publish malformed announcements or forged entries on a
// group's topic are cut off by every member; the members go on unaffected.
func TestMisbehavingPeersAreCutOff(t *testing.T) {
	ctx := context.Background()
	sn, nodes, ref := threeMembers(t)
	gi, err := nodes[0].m.Resolve(ref)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := nodes[0].m.Topic(gi.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	garbage, err := sn.AddNode("garbage")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := sn.AddNode("forger")
	if err != nil {
		t.Fatal(err)
	}
	sn.ConnectAll()

	// Wait until the members see the new peers subscribed: publish until
	// blocked (each publish is a new attempt, not a timing assumption).
	tests := []struct {
		name string
		peer interface {
			sdk.Network
			PeerID() string
		}
		payload func() []byte
	}{
		{"malformed announcement", garbage, func() []byte { return []byte{1, 2, 3} }},
		{"forged inline entry", forger, func() []byte {
			// A well-formed entry of the group's message log whose signature does not verify, handed
			// over inline: on a network whose every node validates pubsub
			// (newTestNode says so), its publisher is provably at fault.
			_, key, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			forged := logtest.ForgedEntry(t, group.MessagesLogID(gi.ID), key)
			a := replication.Announcement{Log: replication.LogIDFor(topic, "messages"), Heads: []cid.Cid{blockCID(forged)}, Inline: [][]byte{forged}}
			b, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := tc.payload()
			for i, n := range nodes {
				waitFor(t, fmt.Sprintf("node %d cuts %s off", i, tc.peer.PeerID()), func() bool {
					if n.net.Blocked(tc.peer.PeerID()) {
						return true
					}
					_ = tc.peer.Publish(ctx, topic, payload)
					return n.net.Blocked(tc.peer.PeerID())
				})
			}
		})
	}
	// The members still talk.
	if _, err := nodes[2].m.Send(ctx, ref, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d has the message", i), func() bool { return slices.Contains(bodies(t, n, ref), "still here") })
	}
}

func blockCID(data []byte) cid.Cid {
	h, _ := multihash.Sum(data, multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.DagCBOR, h)
}
