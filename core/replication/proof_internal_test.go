package replication

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

var (
	memberSecret = []byte("0123456789abcdef0123456789abcdef")
	otherSecret  = []byte("fedcba9876543210fedcba9876543210")
)

func mustKeys(t testing.TB, secret []byte) *TopicKeys {
	t.Helper()
	k, err := DeriveTopicKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// verifierNet starts a replicator "v" replicating a log under
// memberSecret, and raw nodes named by others, all connected.
func verifierNet(t *testing.T, others ...string) (*Replicator, map[string]*simnet.Node) {
	t.Helper()
	ctx := context.Background()
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	nv, err := sn.AddNode("v")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(nv, WithAntiEntropyInterval(time.Hour), WithRendezvousInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	l, err := log.Open(ctx, "test/messages", r.BlockStore(), log.NewMemKV(), log.NewKeySigner(priv),
		log.AllowWriters(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = l.Close() })
	if _, err := r.Add(memberSecret, "messages", l); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*simnet.Node{}
	for _, name := range others {
		n, err := sn.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		nodes[name] = n
	}
	sn.ConnectAll()
	return r, nodes
}

// recorder is a DirectMessenger that records every request and answer.
type recorder struct {
	sdk.DirectMessenger
	mu   sync.Mutex
	reqs [][]byte
	resp [][]byte
}

func (c *recorder) Request(ctx context.Context, peer, protocol string, req []byte) ([]byte, error) {
	resp, err := c.DirectMessenger.Request(ctx, peer, protocol, req)
	c.mu.Lock()
	c.reqs = append(c.reqs, bytes.Clone(req))
	c.resp = append(c.resp, bytes.Clone(resp))
	c.mu.Unlock()
	return resp, err
}

func TestProofRightAndWrongKey(t *testing.T) {
	r, nodes := verifierNet(t, "member", "stranger")
	ctx := context.Background()
	topic := mustKeys(t, memberSecret).Topic
	tests := []struct {
		name, peer string
		keys       []*TopicKeys
		want       []bool
	}{
		{"member", "member", []*TopicKeys{mustKeys(t, otherSecret), mustKeys(t, memberSecret)}, []bool{false, true}},
		{"wrong key", "stranger", []*TopicKeys{mustKeys(t, otherSecret)}, []bool{false}},
	}
	var sizes [][]int
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{DirectMessenger: nodes[tc.peer]}
			got, err := Prove(ctx, rec, tc.peer, "v", tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("proven %v, want %v", got, tc.want)
				}
			}
			if has := r.proofs.has(tc.peer, topic); has != tc.want[len(tc.want)-1] {
				t.Fatalf("verifier records %s as proven: %v", tc.peer, has)
			}
			var s []int
			for i := range rec.reqs {
				s = append(s, len(rec.reqs[i]), len(rec.resp[i]))
			}
			sizes = append(sizes, s)
		})
	}
	// A member and a stranger see answers of the same sizes: a refusal
	// does not tell whether the verifier has the topic.
	if len(sizes) == 2 && !equalInts(sizes[0], sizes[1]) {
		t.Fatalf("message sizes differ: member %v, stranger %v", sizes[0], sizes[1])
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProofReplayedTranscript(t *testing.T) {
	r, nodes := verifierNet(t, "member", "thief")
	ctx := context.Background()
	keys := mustKeys(t, memberSecret)
	rec := &recorder{DirectMessenger: nodes["member"]}
	if ok, err := Prove(ctx, rec, "member", "v", []*TopicKeys{keys}); err != nil || !ok[0] {
		t.Fatalf("honest proof: %v %v", ok, err)
	}
	tagsMsg := rec.reqs[1]
	tests := []struct {
		name, peer string
		helloFirst bool // send a fresh hello before the old tags
	}{
		{"same peer, transcript used once already", "member", false},
		{"same peer, after a fresh hello", "member", true},
		{"another peer", "thief", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.proofs.forget(tc.peer)
			n := nodes[tc.peer]
			if tc.helloFirst {
				hello, _ := (&proofMessage{kind: kindProofHello, nonceP: randomNonce()}).MarshalBinary()
				if _, err := n.Request(ctx, "v", ProofProtocol, hello); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := n.Request(ctx, "v", ProofProtocol, tagsMsg)
			if err != nil {
				t.Fatal(err)
			}
			if r.proofs.has(tc.peer, keys.Topic) {
				t.Fatal("a replayed transcript proved membership")
			}
			reply, err := decodeProofMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			old, _ := decodeProofMessage(rec.resp[1])
			for i := range reply.tags {
				if reply.tags[i] == old.tags[i] {
					t.Fatal("the verifier answered a replay with its real tag")
				}
			}
		})
	}
}

// TestProofReflectedChallenge: a stranger that v proves to tries to turn
// v's own tags into a proof of its own, choosing its nonces so that the
// transcripts line up. The tags name the prover and the verifier, in
// order, and their role, so it fails.
func TestProofReflectedChallenge(t *testing.T) {
	r, nodes := verifierNet(t, "e")
	ctx := context.Background()
	keys := mustKeys(t, memberSecret)
	e := nodes["e"]
	// v also proves to e on its own when they connect, so the handler can
	// run for two proofs at once: what it catches is kept under mu, and the
	// nonces come from the tags message itself, so tags and transcript
	// always belong to the same run.
	var (
		mu     sync.Mutex
		caught [][ProofTagSize]byte
		nonces [2][ProofNonceSize]byte
	)
	err := e.HandleRequests(ProofProtocol, func(ctx context.Context, from string, req []byte) ([]byte, error) {
		m, err := decodeProofMessage(req)
		if err != nil {
			return nil, err
		}
		switch m.kind {
		case kindProofHello:
			// Open a proof of its own with v's nonce as its own, and
			// hand v's challenge back to v.
			hello, _ := (&proofMessage{kind: kindProofHello, nonceP: m.nonceP}).MarshalBinary()
			raw, err := e.Request(ctx, "v", ProofProtocol, hello)
			if err != nil {
				return nil, err
			}
			ch, err := decodeProofMessage(raw)
			if err != nil {
				return nil, err
			}
			return (&proofMessage{kind: kindProofNonce, nonceV: ch.nonceV}).MarshalBinary()
		default:
			mu.Lock()
			caught, nonces = m.tags, [2][ProofNonceSize]byte{m.nonceP, m.nonceV}
			mu.Unlock()
			reply := &proofMessage{kind: kindProofReply, tags: make([][ProofTagSize]byte, len(m.tags))}
			return reply.MarshalBinary()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// v proves to e (as it does to every peer that connects).
	if _, err := r.prove(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	tags, ns := caught, nonces
	mu.Unlock()
	if len(tags) == 0 {
		t.Fatal("v sent no tags")
	}
	// e hands v's tags back as its own, over the transcript it lined up.
	msg, _ := (&proofMessage{kind: kindProofTags, nonceP: ns[0], nonceV: ns[1], tags: tags}).MarshalBinary()
	if _, err := e.Request(ctx, "v", ProofProtocol, msg); err != nil {
		t.Fatal(err)
	}
	if r.proofs.has("e", keys.Topic) {
		t.Fatal("v's own tags, reflected, proved e a member")
	}
}

// TestProofBoundToPeerIDs: m relays between a member and v (it answers the
// member as a verifier and speaks to v as a prover), so every nonce lines
// up; the member's tags name m as the verifier and the member as the
// prover, so they prove nothing to v about m.
func TestProofBoundToPeerIDs(t *testing.T) {
	r, nodes := verifierNet(t, "member", "m")
	ctx := context.Background()
	keys := mustKeys(t, memberSecret)
	m := nodes["m"]
	err := m.HandleRequests(ProofProtocol, func(ctx context.Context, _ string, req []byte) ([]byte, error) {
		return m.Request(ctx, "v", ProofProtocol, req) // relay both ways
	})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := Prove(ctx, nodes["member"], "member", "m", []*TopicKeys{keys})
	if err != nil {
		t.Fatal(err)
	}
	if ok[0] {
		t.Fatal("the member took v's answer through m as m's")
	}
	if r.proofs.has("m", keys.Topic) || r.proofs.has("member", keys.Topic) {
		t.Fatal("a relayed proof proved membership")
	}
}

// TestStrangerGetsNothing: a peer that has not proved the topic gets the
// same answers as a peer asking about a log that does not exist, and is
// never sent a heads request.
func TestStrangerGetsNothing(t *testing.T) {
	r, nodes := verifierNet(t, "stranger")
	ctx := context.Background()
	keys := mustKeys(t, memberSecret)
	s := nodes["stranger"]
	var asked sync.Mutex
	headsAsked := 0
	if err := s.HandleRequests(HeadsProtocol, func(context.Context, string, []byte) ([]byte, error) {
		asked.Lock()
		headsAsked++
		asked.Unlock()
		return (&HeadsExchange{Response: true}).MarshalBinary()
	}); err != nil {
		t.Fatal(err)
	}
	known := LogIDFor(keys.Topic, "messages")
	unknown := LogIDFor(keys.Topic, "no such channel")
	ask := func(id LogID) ([]byte, string) {
		req, _ := (&HeadsExchange{Logs: []LogHeads{{Log: id}}}).MarshalBinary()
		heads, err := s.Request(ctx, "v", HeadsProtocol, req)
		if err != nil {
			t.Fatal(err)
		}
		ereq, _ := (&EntriesRequest{Log: id, Want: r.replica(known).log.Heads(), MaxEntries: 10, MaxBytes: 1 << 20}).MarshalBinary()
		_, err = s.Request(ctx, "v", EntriesProtocol, ereq)
		if err == nil {
			t.Fatal("a stranger's entries request was answered")
		}
		return heads, err.Error()
	}
	h1, e1 := ask(known)
	h2, e2 := ask(unknown)
	if !bytes.Equal(h1, h2) || e1 != e2 {
		t.Fatalf("a stranger tells a known log from an unknown one:\nheads %x vs %x\nentries %q vs %q", h1, h2, e1, e2)
	}
	if x, _ := DecodeHeadsExchange(h1); len(x.Logs) != 0 {
		t.Fatal("a stranger was told heads")
	}
	// v proves to the stranger on Sync; it never asks it for heads.
	_ = r.Sync(ctx)
	asked.Lock()
	defer asked.Unlock()
	if headsAsked != 0 {
		t.Fatalf("v sent a stranger %d heads requests", headsAsked)
	}
	if len(r.Status().Blocked) != 0 {
		t.Fatalf("v cut off a peer that only asked: %v", r.Status().Blocked)
	}
}

func TestSealedAnnouncement(t *testing.T) {
	keys, other := mustKeys(t, memberSecret), mustKeys(t, otherSecret)
	e := &Announcement{Log: LogIDFor(keys.Topic, "messages"), Heads: []cid.Cid{blockCID([]byte("x"))}}
	sealed, err := keys.Seal(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeAnnouncement(sealed); err == nil {
		t.Fatal("a sealed announcement decodes without the key")
	}
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("another topic's key opens it")
	}
	if err := ValidateAnnouncement(sealed); err != nil {
		t.Fatalf("a relay refuses a well-framed sealed announcement: %v", err)
	}
	got, err := keys.Open(sealed)
	if err != nil || got.Log != e.Log || !got.Heads[0].Equals(e.Heads[0]) {
		t.Fatalf("open: %v %+v", err, got)
	}
	if (len(sealed)-2-sealedOverhead)%sealPad != 0 {
		t.Fatalf("sealed size %d not padded", len(sealed))
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := keys.Open(bad); err == nil {
			t.Fatalf("tampered byte %d opened", i)
		}
	}
}

// TestSealedAnnouncementPadding: a sealed announcement's plaintext is
// padded with zeros to the next multiple of 16 bytes (fewer than 16
// bytes of padding); more padding, as a 64-byte step would need, or a
// non-zero byte in it, does not open.
func TestSealedAnnouncementPadding(t *testing.T) {
	keys := mustKeys(t, memberSecret)
	for size := 1; size <= 40; size++ {
		blk := bytes.Repeat([]byte{'p'}, size)
		a := &Announcement{Log: LogIDFor(keys.Topic, "messages"), Heads: []cid.Cid{blockCID(blk)}, Inline: [][]byte{blk}}
		plain, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := keys.Seal(a)
		if err != nil {
			t.Fatal(err)
		}
		inner := 1 + len(plain) // a uvarint length below 128
		if want := 2 + sealedOverhead + (inner+15)/16*16; len(sealed) != want {
			t.Fatalf("entry of %d B: sealed %d B, want %d", size, len(sealed), want)
		}
	}
	a := &Announcement{Log: LogIDFor(keys.Topic, "messages"), Heads: []cid.Cid{blockCID([]byte("x"))}}
	plain, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	seal := func(inner []byte) []byte {
		box, err := keys.sealer().Seal(&keys.seal, inner, sealAD(keys.Topic))
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{WireVersion, kindSealed}, box...)
	}
	padded := func(pad int) []byte {
		inner := append(binary.AppendUvarint(nil, uint64(len(plain))), plain...)
		return append(inner, make([]byte, pad)...)
	}
	exact := (16 - (1+len(plain))%16) % 16 // 7 for this announcement
	if _, err := keys.Open(seal(padded(exact))); err != nil {
		t.Fatalf("padded to 16: %v", err)
	}
	n := 1 + len(plain)
	pad64 := (n+63)/64*64 - n
	if pad64 < 16 {
		pad64 += 64
	}
	nonZero := padded(exact)
	nonZero[len(nonZero)-1] = 1
	for name, inner := range map[string][]byte{
		"16 more bytes of padding": padded(exact + 16),
		"padded to 64 (as before)": padded(pad64),
		"not a multiple of 16":     padded(exact - 1),
		"non-zero padding":         nonZero,
	} {
		if _, err := keys.Open(seal(inner)); !errors.Is(err, ErrMalformedMessage) {
			t.Errorf("%s: %v, want ErrMalformedMessage", name, err)
		}
	}
}

// FuzzProofMessage: the proof decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzProofMessage(f *testing.F) {
	for _, m := range []*proofMessage{
		{kind: kindProofHello, nonceP: randomNonce()},
		{kind: kindProofNonce, nonceV: randomNonce()},
		{kind: kindProofTags, nonceP: randomNonce(), nonceV: randomNonce(), tags: make([][ProofTagSize]byte, 16)},
		{kind: kindProofReply, tags: make([][ProofTagSize]byte, 1)},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 9, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeProofMessage(b)
		if err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x -> %x (%v)", b, again, err)
		}
	})
}

// FuzzOpenAnnouncement: opening never panics; what opens re-seals to an
// announcement that opens to the same.
func FuzzOpenAnnouncement(f *testing.F) {
	keys := mustKeys(f, memberSecret)
	a := &Announcement{Log: LogIDFor(keys.Topic, "messages"), Heads: []cid.Cid{blockCID([]byte("x"))}}
	sealed, err := keys.Seal(a)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{1, 11})
	// Plaintexts as sealed content: the fuzzer mutates the inner bytes.
	plain, _ := a.MarshalBinary()
	f.Add(plain)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, data := range [][]byte{b, mustSealBytes(t, keys, b)} {
			got, err := keys.Open(data)
			if err != nil {
				continue
			}
			back, err := got.MarshalBinary()
			if err != nil {
				t.Fatalf("opened an announcement that does not encode: %v", err)
			}
			if _, err := DecodeAnnouncement(back); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func mustSealBytes(t testing.TB, k *TopicKeys, plain []byte) []byte {
	if len(plain) > MaxAnnouncementSize {
		return nil
	}
	b, err := k.sealBytes(plain)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestValidatorVerdicts: what the replicator's pubsub validator says of
// each kind of message on its topic.
func TestValidatorVerdicts(t *testing.T) {
	r, _ := verifierNet(t)
	keys, other := mustKeys(t, memberSecret), mustKeys(t, otherSecret)
	rep := r.replica(LogIDFor(keys.Topic, "messages"))
	own := rep.log.Heads()
	seal := func(k *TopicKeys, a *Announcement) []byte {
		b, err := k.Seal(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknownHead := blockCID([]byte("nobody has this"))
	tests := []struct {
		name string
		data []byte
		want sdk.Verdict
	}{
		{"heads already here (forwarded)", seal(keys, &Announcement{Log: rep.id, Heads: own}), sdk.VerdictAccept},
		{"heads to fetch (used, not forwarded)", seal(keys, &Announcement{Log: rep.id, Heads: []cid.Cid{unknownHead}}), sdk.VerdictIgnore},
		{"another channel of the topic", seal(keys, &Announcement{Log: LogIDFor(keys.Topic, "x"), Heads: own}), sdk.VerdictIgnore},
		{"sealed for another topic", seal(other, &Announcement{Log: rep.id, Heads: own}), sdk.VerdictReject},
		{"plain announcement", func() []byte { b, _ := (&Announcement{Log: rep.id, Heads: own}).MarshalBinary(); return b }(), sdk.VerdictReject},
		{"garbage", []byte("garbage"), sdk.VerdictReject},
		{"bad inline entry", seal(keys, &Announcement{Log: rep.id, Heads: []cid.Cid{blockCID([]byte("junk"))}, Inline: [][]byte{[]byte("junk")}}), sdk.VerdictReject},
	}
	v := r.validator(keys)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := v(context.Background(), "peer", tc.data); got != tc.want {
				t.Fatalf("verdict %d, want %d", got, tc.want)
			}
		})
	}
}

// scored is a simnet node that records application scores.
type scored struct {
	*simnet.Node
	mu     sync.Mutex
	scores map[string]float64
}

func (s *scored) ScorePeer(_ context.Context, peer string, delta float64, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scores[peer] += delta
	return nil
}

func (s *scored) score(peer string) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scores[peer]
}

// TestAnnouncerThatDoesNotServeLosesScore: a key holder announces a head
// (to be fetched: not forwarded, so it is the author) and, asked for it
// directly, serves nothing. It loses score at once, and nobody else is
// asked for the head on its word.
func TestAnnouncerThatDoesNotServeLosesScore(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	nv, _ := sn.AddNode("v")
	sv := &scored{Node: nv, scores: map[string]float64{}}
	r, err := New(sv, WithAntiEntropyInterval(time.Hour), WithRendezvousInterval(0), WithFetchTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	l, err := log.Open(ctx, "test/messages", r.BlockStore(), log.NewMemKV(), log.NewKeySigner(priv),
		log.AllowWriters(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = l.Close() })
	keys := mustKeys(t, memberSecret)
	id, err := r.Add(memberSecret, "messages", l)
	if err != nil {
		t.Fatal(err)
	}
	liar, _ := sn.AddNode("liar")
	sn.ConnectAll()
	if err := liar.HandleRequests(EntriesProtocol, func(_ context.Context, _ string, raw []byte) ([]byte, error) {
		req, err := DecodeEntriesRequest(raw)
		if err != nil {
			return nil, err
		}
		return (&EntriesResponse{Log: req.Log}).MarshalBinary()
	}); err != nil {
		t.Fatal(err)
	}
	if ok, err := Prove(ctx, liar, "liar", "v", []*TopicKeys{keys}); err != nil || !ok[0] {
		t.Fatalf("prove: %v %v", ok, err)
	}
	sealed, err := keys.Seal(&Announcement{Log: id, Heads: []cid.Cid{blockCID([]byte("nobody has this"))}})
	if err != nil {
		t.Fatal(err)
	}
	if v := r.validator(keys)(ctx, "liar", sealed); v != sdk.VerdictIgnore {
		t.Fatalf("verdict %d for heads to fetch, want ignore (not forwarded)", v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sv.score("liar") > scoreNotServed/2 {
		if time.Now().After(deadline) {
			t.Fatalf("the liar's score is %v; the head fetch never ended (fetch timeout is an hour)", sv.score("liar"))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}
