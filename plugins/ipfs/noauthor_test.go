package ipfs

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"google.golang.org/protobuf/proto"
)

// rejectTracer records why gossipsub rejected messages (RawTracer).
type rejectTracer struct {
	sendCounter
	mu      sync.Mutex
	reasons map[string]string // data -> reason
}

func (r *rejectTracer) RejectMessage(m *pubsub.Message, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons[string(m.GetData())] = reason
}

func (r *rejectTracer) reason(data string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reasons[data]
}

// TestPubsubMessagesCarryNoAuthor: a message the node publishes carries
// no from, seqno, key or signature on the wire (WithNoAuthor), and one
// that carries any of them is rejected before delivery (StrictNoSign
// with no author), while a plain one from the same kind of peer is
// delivered.
func TestPubsubMessagesCarryNoAuthor(t *testing.T) {
	tr := &rejectTracer{reasons: map[string]string{}}
	a := New()
	a.psOpts = []pubsub.Option{pubsub.WithRawTracer(tr)}
	diags, err := a.Configure(context.Background(), map[string]any{
		"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false, "pubsub_validation": PubsubValidationNone,
	})
	if err != nil || len(diags) > 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := a.Subscribe(ctx, openTopic)
	if err != nil {
		t.Fatal(err)
	}
	aGot := collect(msgs)

	// What the node writes.
	r := newRawPeer(t)
	r.connect(t, a)
	r.send(t, a, &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{subOpts(openTopic, true)}})
	waitFor(t, "the raw peer on a's topic", func() bool { return slices.Contains(a.ps.ListPeers(openTopic), r.h.ID()) })
	if err := a.Publish(ctx, openTopic, []byte("from a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's message at the raw peer", func() bool { return r.gotMessage(openTopic, "from a") })
	for _, rpc := range r.received() {
		for _, m := range rpc.GetPublish() {
			if m.From != nil || m.Seqno != nil || m.Key != nil || m.Signature != nil {
				t.Fatalf("a's message carries author data: from %x seqno %x key %x signature %x", m.From, m.Seqno, m.Key, m.Signature)
			}
			if got := proto.Size(m); got != len(openTopic)+2+len("from a")+2 {
				t.Fatalf("a's message is %d B on the wire, want topic and data only", got)
			}
		}
	}

	// What the node accepts.
	cases := []struct {
		name   string
		set    func(*pb.Message, *rawPeer)
		reason string
	}{
		{"from", func(m *pb.Message, p *rawPeer) { m.From = []byte(p.h.ID()) }, pubsub.RejectUnexpectedAuthInfo},
		{"seqno", func(m *pb.Message, _ *rawPeer) { m.Seqno = []byte{0, 0, 0, 0, 0, 0, 0, 1} }, pubsub.RejectUnexpectedAuthInfo},
		{"key", func(m *pb.Message, _ *rawPeer) { m.Key = []byte{1, 2, 3} }, pubsub.RejectUnexpectedAuthInfo},
		{"signature", func(m *pb.Message, _ *rawPeer) { m.Signature = make([]byte, 64) }, pubsub.RejectUnexpectedSignature},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPeer(t) // a fresh peer: a rejection costs its sender score
			p.connect(t, a)
			bad := fmt.Sprintf("with %s %d", tc.name, i)
			m := &pb.Message{Topic: proto.String(openTopic), Data: []byte(bad)}
			tc.set(m, p)
			plain := fmt.Sprintf("plain %d", i)
			p.send(t, a, &pb.RPC{Publish: []*pb.Message{m, {Topic: proto.String(openTopic), Data: []byte(plain)}}})
			waitFor(t, "the plain message at a", func() bool { return aGot.has(plain) })
			waitFor(t, "the rejection", func() bool { return tr.reason(bad) != "" })
			if got := tr.reason(bad); got != tc.reason {
				t.Fatalf("rejected for %q, want %q", got, tc.reason)
			}
			if aGot.has(bad) {
				t.Fatal("a message with author data was delivered")
			}
		})
	}
}
