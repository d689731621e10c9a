package group

import (
	"testing"
)

// BenchmarkSend measures Send (ratchet step, header and body sealing,
// envelope, log append with signature and access check) of 200-byte
// messages into a two-member group.
func BenchmarkSend(b *testing.B) {
	n := newNet()
	rs := n.create(b, "alice", "bob")
	g := rs[0].g
	body := make([]byte, 200)
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.Send(ctx, body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	e, _ := g.msgs.Get(ctx, g.msgs.Heads()[0])
	b.ReportMetric(float64(len(e.Bytes())-len(body)), "overhead-B/entry")
	b.ReportMetric(float64(len(e.Payload)-len(body)), "envelope-overhead-B")
}
