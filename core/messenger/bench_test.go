package messenger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// BenchmarkSendLocal measures Send on a one-member group: seal, append,
// save keys, announce.
func BenchmarkSendLocal(b *testing.B) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	n := newTestNode(b, sn, "a")
	if _, err := n.m.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.m.Send(ctx, "g", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliveryThreeNodes measures one message sent by a member until
// the two other members have it delivered (simnet, no latency).
func BenchmarkDeliveryThreeNodes(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, nodes, ref := threeMembers(b)
	subs := make([]<-chan *group.Message, 0, 2)
	for _, n := range nodes[1:] {
		ch, _, err := n.m.Subscribe(ctx, ref)
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, ch)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if _, err := nodes[0].m.Send(ctx, ref, fmt.Appendf(nil, "m%d", i)); err != nil {
			b.Fatal(err)
		}
		for _, ch := range subs {
			<-ch
		}
	}
	_ = messenger.ListOptions{}
}
