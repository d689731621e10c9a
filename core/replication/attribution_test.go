package replication_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/internal/logtest"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// lieInHeadExchange makes evil answer every head-exchange request naming
// head for each log it is asked about.
func lieInHeadExchange(t testing.TB, evil *simnet.Node, head cid.Cid) {
	t.Helper()
	err := evil.HandleRequests(replication.HeadsProtocol, func(_ context.Context, _ string, req []byte) ([]byte, error) {
		x, err := replication.DecodeHeadsExchange(req)
		if err != nil {
			return nil, err
		}
		resp := &replication.HeadsExchange{Response: true}
		for _, lh := range x.Logs {
			resp.Logs = append(resp.Logs, replication.LogHeads{Log: lh.Log, Heads: []cid.Cid{head}})
		}
		return resp.MarshalBinary()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// recordingHandler keeps the "peer" attribute of every record whose
// message is one of msgs.
type recordingHandler struct {
	mu    *sync.Mutex
	msgs  map[string]bool
	peers *[]string
}

func newRecordingHandler(msgs ...string) *recordingHandler {
	h := &recordingHandler{mu: &sync.Mutex{}, msgs: map[string]bool{}, peers: new([]string)}
	for _, m := range msgs {
		h.msgs[m] = true
	}
	return h
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	if !h.msgs[r.Message] {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "peer" {
			h.mu.Lock()
			*h.peers = append(*h.peers, a.Value.String())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *recordingHandler) saw(peer string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range *h.peers {
		if p == peer {
			return true
		}
	}
	return false
}

// TestForwardedMisbehaviourDoesNotCutOffRelay: evil reaches the victims a
// and b only through relay, an honest replica whose network forwards what
// evil publishes (as a gossipsub router does), so the victims receive
// evil's data with From = relay. Pubsub is not validated, so nothing
// arriving over pubsub proves who wrote it: the victims drop the bad data
// and cut nobody off, and replication through the relay goes on.
func TestForwardedMisbehaviourDoesNotCutOffRelay(t *testing.T) {
	topic, err := replication.Topic(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// attack publishes from evil; relayNode is the relay's network.
		attack func(t *testing.T, evil, relayNode *simnet.Node, writer ed25519.PrivateKey)
		// rejects: the victims' logs count a rejected entry (else the
		// drop shows in their logs only).
		rejects bool
	}{
		{"garbage announcement", func(t *testing.T, evil, _ *simnet.Node, _ ed25519.PrivateKey) {
			if err := evil.Publish(context.Background(), topic, []byte("not an announcement")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"announcement with trailing bytes", func(t *testing.T, evil, _ *simnet.Node, writer ed25519.PrivateKey) {
			b := announce(t, topic, []cid.Cid{cidOf(forgedEntry(t, writer))}, nil)
			if err := evil.Publish(context.Background(), topic, append(b, 0)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"forged entry inline", func(t *testing.T, evil, _ *simnet.Node, writer ed25519.PrivateKey) {
			f := forgedEntry(t, writer)
			if err := evil.Publish(context.Background(), topic, announce(t, topic, []cid.Cid{cidOf(f)}, [][]byte{f})); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"forged entry by bitswap", func(t *testing.T, evil, relayNode *simnet.Node, writer ed25519.PrivateKey) {
			f := forgedEntry(t, writer)
			putRaw(t, evil, f)
			putRaw(t, relayNode, f) // servable from the relay too (a block cache)
			if err := evil.Publish(context.Background(), topic, announce(t, topic, []cid.Cid{cidOf(f)}, nil)); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sn := simnet.New()
			t.Cleanup(func() { _ = sn.Close() })
			names := []string{"a", "b", "relay"}
			keys := make([]ed25519.PrivateKey, len(names))
			pubs := make([]ed25519.PublicKey, len(names))
			for i := range keys {
				keys[i] = newKey(t)
				pubs[i] = keys[i].Public().(ed25519.PublicKey)
			}
			access := log.AllowWriters(pubs...)
			peers := make([]*peerNode, len(names))
			recs := make([]*recordingHandler, len(names))
			for i, name := range names {
				node, err := sn.AddNode(name)
				if err != nil {
					t.Fatal(err)
				}
				recs[i] = newRecordingHandler("dropped malformed pubsub message",
					"dropped bad data forwarded over pubsub; asking the forwarder directly")
				peers[i] = startPeer(t, name, node, keys[i], access,
					fastOpts(replication.WithLogger(slog.New(recs[i])))...)
			}
			evil, err := sn.AddNode("evil")
			if err != nil {
				t.Fatal(err)
			}
			sn.ConnectAll()
			// Evil reaches a and b only through the relay, and a and b
			// reach each other only through it too.
			sn.Disconnect("evil", "a")
			sn.Disconnect("evil", "b")
			sn.Disconnect("a", "b")
			relayNode := sn.Node("relay")
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			fwd, err := relayNode.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for m := range fwd {
					if m.From == "evil" {
						_ = relayNode.Publish(ctx, topic, m.Data)
					}
				}
			}()
			a, b, relay := peers[0], peers[1], peers[2]
			appendN(t, a, 3, "before")
			waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 3) })

			tc.attack(t, evil, relayNode, a.key)
			for i, v := range []*peerNode{a, b} {
				waitFor(t, 10*time.Second, func() string { return v.name + " to drop the forwarded data" }, func() bool {
					if tc.rejects && v.rep.Status().Logs[0].Rejected == 0 {
						return false
					}
					return recs[i].saw("relay")
				})
			}
			for _, p := range peers {
				for _, bl := range p.rep.Status().Blocked {
					if bl.Peer != "evil" {
						t.Fatalf("%s cut off honest peer %s: %s", p.name, bl.Peer, bl.Reason)
					}
				}
				if sn.Node(p.name).Blocked("relay") {
					t.Fatalf("%s's network blocked the relay", p.name)
				}
			}
			appendN(t, b, 3, "after-b")
			appendN(t, relay, 2, "after-relay")
			waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 8) })
			requireSameOrder(t, peers)
		})
	}
}

// TestUnvalidatedPubsubDoesNotCutOffPublisher: without
// WithPubsubValidated, even a peer that publishes garbage itself is not
// cut off for it (nothing proves it wrote it); the message is dropped.
func TestUnvalidatedPubsubDoesNotCutOffPublisher(t *testing.T) {
	topic, err := replication.Topic(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	node, err := sn.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	rec := newRecordingHandler("dropped malformed pubsub message")
	a := startPeer(t, "a", node, k, log.AllowWriters(k.Public().(ed25519.PublicKey)),
		fastOpts(replication.WithLogger(slog.New(rec)))...)
	evil := evilPeer(t, sn)
	if err := evil.Publish(context.Background(), topic, []byte("not an announcement")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() string { return "the garbage to be dropped" }, func() bool { return rec.saw("evil") })
	if bl := a.rep.Status().Blocked; len(bl) != 0 {
		t.Fatalf("cut off over unvalidated pubsub: %+v", bl)
	}
}

func TestValidateAnnouncement(t *testing.T) {
	topic, err := replication.Topic(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	good := signedEntry(t, k, "hello")
	forged := forgedEntry(t, k)
	tests := []struct {
		name string
		data []byte
		want []error // nil: valid
	}{
		{"announcement without inline", plainAnnounce(t, topic, []cid.Cid{cidOf(good)}, nil), nil},
		{"announcement with a good inline entry", plainAnnounce(t, topic, []cid.Cid{cidOf(good)}, [][]byte{good}), nil},
		{"digest", digest(t, topic, []cid.Cid{cidOf(good)}), nil},
		{"garbage", []byte("not an announcement"), []error{replication.ErrMalformedMessage}},
		{"empty", nil, []error{replication.ErrMalformedMessage}},
		{"trailing byte", append(plainAnnounce(t, topic, []cid.Cid{cidOf(good)}, nil), 0), []error{replication.ErrMalformedMessage}},
		{"forged inline entry", plainAnnounce(t, topic, []cid.Cid{cidOf(forged)}, [][]byte{forged}),
			[]error{replication.ErrMalformedMessage, log.ErrBadSignature}},
		{"inline bytes not an entry", plainAnnounce(t, topic, []cid.Cid{cidOf([]byte("junk"))}, [][]byte{[]byte("junk")}),
			[]error{replication.ErrMalformedMessage, log.ErrMalformed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := replication.ValidateAnnouncement(tc.data)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid message refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid message accepted")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %v does not wrap %v", err, w)
				}
			}
		})
	}
}

// FuzzValidateAnnouncement: never panics, and accepts only what decodes.
func FuzzValidateAnnouncement(f *testing.F) {
	topic, _ := replication.Topic(testSecret)
	k := newKey(f)
	good := signedEntry(f, k, "hello")
	f.Add(plainAnnounce(f, topic, []cid.Cid{cidOf(good)}, [][]byte{good}))
	f.Add(plainAnnounce(f, topic, []cid.Cid{cidOf(good)}, nil))
	f.Add([]byte("not an announcement"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := replication.ValidateAnnouncement(b)
		if len(b) > 1 && b[1] == 11 {
			return // sealed: only its frame is checked without the key
		}
		if _, derr := replication.DecodeAnnouncement(b); derr != nil && err == nil {
			t.Fatalf("validated a message that does not decode: %v", derr)
		}
	})
}

// signedEntry returns a genuine entry block of testLogID by key.
func signedEntry(t testing.TB, key ed25519.PrivateKey, payload string) []byte {
	t.Helper()
	return logtest.SignedEntry(t, testLogID, key, payload)
}

func digest(t testing.TB, topic string, heads []cid.Cid) []byte {
	t.Helper()
	a := &replication.Announcement{Digest: true, Log: replication.LogIDFor(topic, "messages"), Heads: heads}
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
