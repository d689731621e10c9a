package messenger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/skein-p2p/skein/plugins/simnet"
)

// BenchmarkUnheld measures what `messages` and `sync status` pay to say
// which own messages no other node holds: a member alone with N messages
// sent (none held elsewhere: every one looked at, up to 1024).
func BenchmarkUnheld(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("alone/%d", n), func(b *testing.B) {
			ctx := context.Background()
			sn := simnet.New()
			defer sn.Close()
			a := newTestNode(b, sn, "a")
			if _, err := a.m.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if _, err := a.m.Send(ctx, "g", fmt.Appendf(nil, "m%d", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				u, err := a.m.Unheld(ctx, "g")
				if err != nil || len(u) != n {
					b.Fatalf("unheld %d, %v; want %d", len(u), err, n)
				}
			}
		})
	}
	// Steady state: the peers hold all but the newest message.
	b.Run("held/1000", func(b *testing.B) {
		ctx := context.Background()
		_, nodes, ref := threeMembers(b)
		a := nodes[0]
		for i := range 1000 {
			if _, err := a.m.Send(ctx, ref, fmt.Appendf(nil, "m%d", i)); err != nil {
				b.Fatal(err)
			}
		}
		if left := a.m.Flush(ctx); len(left) != 0 {
			b.Fatalf("flush left %v", left)
		}
		if _, err := a.m.Send(ctx, ref, []byte("newest")); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.m.Unheld(ctx, ref); err != nil {
				b.Fatal(err)
			}
		}
	})
}
