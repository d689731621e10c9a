package ipfs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

const testValidationTopic = "skein/test/validated"

// testEntry returns a genuine entry block and a copy with a payload byte
// flipped (its signature does not verify).
func testEntry(t testing.TB) (good, forged []byte) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := log.Open(ctx, "test/messages", log.NewMemBlockStore(), log.NewMemKV(), log.NewKeySigner(key),
		log.AllowWriters(key.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := []byte("genuine payload to be forged")
	e, err := l.Append(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	good = bytes.Clone(e.Bytes())
	forged = bytes.Clone(good)
	forged[bytes.Index(forged, payload)] ^= 1
	return good, forged
}

func testAnnouncement(t testing.TB, head []byte, inline ...[]byte) []byte {
	t.Helper()
	c := cid.MustParse(rawBlockCID(t, head))
	a := &replication.Announcement{Log: replication.LogIDFor(testValidationTopic, "messages"), Heads: []cid.Cid{c}, Inline: inline}
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawBlockCID(t testing.TB, data []byte) string {
	t.Helper()
	c, err := cid.Cast(rawBlock(t, data).CID)
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// TestValidatingRelayDropsBadAnnouncements: a non-validating (malicious)
// node publishes through a validating relay to a validating node it is
// not connected to. The relay delivers and forwards only what validates;
// the bad messages reach neither it nor the far node.
func TestValidatingRelayDropsBadAnnouncements(t *testing.T) {
	good, forged := testEntry(t)
	tests := []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("not an announcement")},
		{"trailing byte", append(testAnnouncement(t, good), 0)},
		{"forged inline entry", testAnnouncement(t, forged, forged)},
		{"inline bytes not an entry", testAnnouncement(t, []byte("junk"), []byte("junk"))},
	}
	evil := startNetwork(t, map[string]any{"pubsub_validation": PubsubValidationNone})
	// sender publishes the valid messages (evil, penalised for the bad
	// ones, is soon graylisted by the relay).
	sender := startNetwork(t, map[string]any{"pubsub_validation": PubsubValidationNone})
	relay := startNetwork(t, nil)
	far := startNetwork(t, nil)
	if !relay.PubsubValidated() || evil.PubsubValidated() {
		t.Fatal("PubsubValidated does not follow the config")
	}
	connect(t, evil, relay)
	connect(t, sender, relay)
	connect(t, relay, far)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	relayMsgs, err := relay.Subscribe(ctx, testValidationTopic)
	if err != nil {
		t.Fatal(err)
	}
	farMsgs, err := far.Subscribe(ctx, testValidationTopic)
	if err != nil {
		t.Fatal(err)
	}
	te, err := evil.topic(testValidationTopic)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := relay.topic(testValidationTopic)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := sender.topic(testValidationTopic)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "evil to see the relay on the topic", func() bool { return len(te.ListPeers()) == 1 })
	waitFor(t, "sender to see the relay on the topic", func() bool { return len(ts.ListPeers()) == 1 })
	// evil and sender only publish (they do not subscribe): the relay sees far.
	waitFor(t, "the relay to see far on the topic", func() bool { return len(tr.ListPeers()) == 1 })
	for _, tc := range tests {
		if err := evil.Publish(ctx, testValidationTopic, tc.data); err != nil {
			t.Fatalf("%s: publish: %v", tc.name, err)
		}
	}
	// Then valid ones, a new one each second until one has reached both
	// (gossipsub forwards over the mesh, which forms within heartbeats):
	// every message either receives must be one of them.
	valid := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for _, tc := range []struct {
		name string
		msgs <-chan sdk.PubsubMessage
		from string
	}{{"relay", relayMsgs, sender.PeerID()}, {"far", farMsgs, relay.PeerID()}} {
		for {
			v := testAnnouncement(t, []byte(fmt.Sprintf("valid %d", len(valid))))
			valid[string(v)] = true
			if err := sender.Publish(ctx, testValidationTopic, v); err != nil {
				t.Fatalf("publish valid: %v", err)
			}
			var m sdk.PubsubMessage
			select {
			case m = <-tc.msgs:
			case <-time.After(time.Second):
				if time.Now().After(deadline) {
					t.Fatalf("no valid announcement reached %s", tc.name)
				}
				continue
			}
			if !valid[string(m.Data)] {
				t.Fatalf("%s got an invalid message %q", tc.name, m.Data)
			}
			// From is the peer that handed the message over, not its author.
			if m.From != tc.from {
				t.Fatalf("%s: From = %s, want %s", tc.name, m.From, tc.from)
			}
			break
		}
	}
}

// TestOwnInvalidPublishFails: under "skein" validation a node's own
// invalid message is refused at Publish; under "none" it goes out.
func TestOwnInvalidPublishFails(t *testing.T) {
	good, forged := testEntry(t)
	tests := []struct {
		name       string
		validation string
		data       []byte
		ok         bool
	}{
		{"skein refuses garbage", PubsubValidationSkein, []byte("not an announcement"), false},
		{"skein refuses forged inline", PubsubValidationSkein, testAnnouncement(t, forged, forged), false},
		{"skein accepts an announcement", PubsubValidationSkein, testAnnouncement(t, good, good), true},
		{"none accepts garbage", PubsubValidationNone, []byte("not an announcement"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := startNetwork(t, map[string]any{"pubsub_validation": tc.validation})
			err := n.Publish(context.Background(), testValidationTopic, tc.data)
			if tc.ok && err != nil {
				t.Fatalf("publish refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("invalid message published")
			}
		})
	}
}

func TestAnnouncementValidatorVerdicts(t *testing.T) {
	good, forged := testEntry(t)
	if err := replication.ValidateAnnouncement(testAnnouncement(t, good, good)); err != nil {
		t.Fatalf("good announcement: %v", err)
	}
	if err := replication.ValidateAnnouncement(testAnnouncement(t, forged, forged)); !errors.Is(err, log.ErrBadSignature) {
		t.Fatalf("forged inline entry: %v", err)
	}
}

// TestInvalidMessagesCostTheForwarderScore: a peer that hands over
// messages failing validation falls below the graylist threshold of the
// validating node's peer score; an honest peer stays at 0.
func TestInvalidMessagesCostTheForwarderScore(t *testing.T) {
	var mu sync.Mutex
	scores := map[peer.ID]float64{}
	relay := New()
	relay.scoreHook = func(m map[peer.ID]float64) {
		mu.Lock()
		defer mu.Unlock()
		scores = m
	}
	diags, err := relay.Configure(context.Background(), map[string]any{
		"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false,
	})
	if err != nil || len(diags) > 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop(context.Background()) })
	evil := startNetwork(t, map[string]any{"pubsub_validation": PubsubValidationNone})
	honest := startNetwork(t, nil)
	connect(t, evil, relay)
	connect(t, honest, relay)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := relay.Subscribe(ctx, testValidationTopic); err != nil {
		t.Fatal(err)
	}
	te, err := evil.topic(testValidationTopic)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "evil to see the relay on the topic", func() bool { return len(te.ListPeers()) == 1 })
	good, _ := testEntry(t)
	if err := honest.Publish(ctx, testValidationTopic, testAnnouncement(t, good, good)); err != nil {
		t.Fatal(err)
	}
	evilID, err := peer.Decode(evil.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	honestID, err := peer.Decode(honest.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := evil.Publish(ctx, testValidationTopic, []byte(fmt.Sprintf("garbage %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "evil's score to fall below the graylist threshold", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return scores[evilID] < defaultScoreConfig().GraylistThreshold
	})
	mu.Lock()
	defer mu.Unlock()
	if s := scores[honestID]; s != 0 {
		t.Fatalf("honest peer's score is %v, want 0", s)
	}
}
