package ipfs

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/skein-p2p/skein/sdk"
)

// sendCounter counts pubsub messages carried in outbound RPCs.
type sendCounter struct{ msgs atomic.Int64 }

func (c *sendCounter) SendRPC(rpc *pubsub.RPC, _ peer.ID)                 { c.msgs.Add(int64(len(rpc.GetPublish()))) }
func (*sendCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*sendCounter) OnClosedOutboundStream(peer.ID)                       {}
func (*sendCounter) Join(string)                                          {}
func (*sendCounter) Leave(string)                                         {}
func (*sendCounter) Graft(peer.ID, string)                                {}
func (*sendCounter) Prune(peer.ID, string)                                {}
func (*sendCounter) ValidateMessage(*pubsub.Message)                      {}
func (*sendCounter) DeliverMessage(*pubsub.Message)                       {}
func (*sendCounter) RejectMessage(*pubsub.Message, string)                {}
func (*sendCounter) DuplicateMessage(*pubsub.Message)                     {}
func (*sendCounter) ThrottlePeer(peer.ID)                                 {}
func (*sendCounter) RecvRPC(*pubsub.RPC)                                  {}
func (*sendCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*sendCounter) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*sendCounter) UndeliverableMessage(*pubsub.Message)                 {}

// BenchmarkGossipsubFanout measures, for 10 fully connected hosts, how many
// times one published message is sent in all (sends/msg) and the publish ->
// last delivery latency, at the default mesh degree and at libp2p's default
// of 6, once every subscriber's mesh has formed. The publisher does not
// subscribe and publishes to all nine (flood publishing); the others
// forward over their meshes. Reference: untuned gossipsub sends each
// message ~59 times here.
func BenchmarkGossipsubFanout(b *testing.B) {
	for _, d := range []int{3, 4, 6} {
		b.Run(fmt.Sprintf("hosts=10/mesh_d=%d", d), func(b *testing.B) {
			const hosts = 10
			counter := &sendCounter{}
			var nets []*Network
			var meshes []*meshTracer
			for range hosts {
				n := New()
				mesh := newMeshTracer()
				meshes = append(meshes, mesh)
				n.psOpts = []pubsub.Option{pubsub.WithRawTracer(counter), pubsub.WithRawTracer(mesh)}
				diags, err := n.Configure(context.Background(), map[string]any{
					"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false, "mesh_d": d,
					"pubsub_validation": PubsubValidationNone, // raw bytes, not announcements
				})
				if err != nil || len(diags) > 0 {
					b.Fatal(diags, err)
				}
				if err := n.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = n.Stop(context.Background()) })
				nets = append(nets, n)
			}
			for i := range nets {
				for j := i + 1; j < hosts; j++ {
					connect(b, nets[i], nets[j])
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const topic = "skein/bench"
			var subs []<-chan sdk.PubsubMessage
			for _, n := range nets[1:] {
				ch, err := n.Subscribe(ctx, topic)
				if err != nil {
					b.Fatal(err)
				}
				subs = append(subs, ch)
			}
			t0, err := nets[0].topic(topic)
			if err != nil {
				b.Fatal(err)
			}
			waitFor(b, "every host to see the others on the topic", func() bool { return len(t0.ListPeers()) == hosts-1 })
			// Flood publishing reaches every host before any mesh exists:
			// measure the steady state, with each subscriber's mesh formed.
			waitFor(b, "every subscriber's mesh to form", func() bool {
				for _, m := range meshes[1:] {
					m.mu.Lock()
					n := len(m.grafts[topic])
					m.mu.Unlock()
					if n < max(1, d-1) {
						return false
					}
				}
				return true
			})
			counter.msgs.Store(0)
			b.ResetTimer()
			var total time.Duration
			for i := range b.N {
				start := time.Now()
				if err := nets[0].Publish(ctx, topic, []byte(fmt.Sprintf("msg %d", i))); err != nil {
					b.Fatal(err)
				}
				for _, ch := range subs {
					select {
					case <-ch:
					case <-time.After(10 * time.Second):
						b.Fatal("message not delivered to every host")
					}
				}
				total += time.Since(start)
			}
			b.StopTimer()
			// Gossip (IHAVE/IWANT) may add sends after delivery; counted as seen.
			b.ReportMetric(float64(counter.msgs.Load())/float64(b.N), "sends/msg")
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-to-all/msg")
		})
	}
}

// BenchmarkBlockFetch measures bitswap fetches of 200-byte blocks between
// two hosts on loopback, 100 blocks per batch.
func BenchmarkBlockFetch(b *testing.B) {
	a := startNetwork(b, nil)
	c := startNetwork(b, nil)
	connect(b, c, a)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		var blks []sdk.Block
		var cids [][]byte
		for j := range 100 {
			blk := rawBlock(b, []byte(fmt.Sprintf("%0200d", i*100+j)))
			blks = append(blks, blk)
			cids = append(cids, blk.CID)
		}
		if err := a.PutBlocks(ctx, blks); err != nil {
			b.Fatal(err)
		}
		for _, err := range c.GetBlocks(ctx, cids) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "blocks/s")
}
