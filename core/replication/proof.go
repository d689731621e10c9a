package replication

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// ProofProtocol is the direct-request protocol of the membership proof: on
// one connection, each of two peers proves it holds the secrets (group
// replication keys) of the topics they share, without sending any key
// material and without telling a peer that holds none of them anything
// (see docs/protocol.md). Head exchange, the entries protocol and pubsub
// admission to a closed topic follow only a proof for that topic.
const ProofProtocol = "/skein/proof/1"

// Membership proof wire limits.
const (
	// ProofNonceSize is the size of each side's nonce.
	ProofNonceSize = 32
	// ProofTagSize is the size of one tag (HMAC-SHA256).
	ProofTagSize = sha256.Size
	// MaxProofTags is the most tags one proof carries; a prover with more
	// topics proves them in several runs.
	MaxProofTags = 256
	// proofTagPad: a prover pads its tags with random ones to a multiple
	// of it, so a verifier that holds none of the keys learns only a
	// rough bound on how many groups the prover is in.
	proofTagPad = 16
	// proofChallengeTTL is how long a verifier keeps its nonce for the
	// prover's tags.
	proofChallengeTTL = 30 * time.Second
	// maxProofChallenges bounds the nonces a verifier keeps (one per
	// peer).
	maxProofChallenges = 4096
)

// Roles in a tag: the prover's tag and the verifier's answer differ, so a
// tag cannot be reflected back as the other role's.
const (
	roleProver   = 'P'
	roleVerifier = 'V'
)

// proofMessage is one message of the membership proof:
//
//	hello  (kindProofHello): the prover's nonce
//	nonce  (kindProofNonce): the verifier's nonce
//	tags   (kindProofTags):  both nonces, then the prover's tags
//	reply  (kindProofReply): the verifier's tags, as many as the prover's
type proofMessage struct {
	kind   byte
	nonceP [ProofNonceSize]byte
	nonceV [ProofNonceSize]byte
	tags   [][ProofTagSize]byte
}

// MarshalBinary encodes the message.
func (m *proofMessage) MarshalBinary() ([]byte, error) {
	b := []byte{WireVersion, m.kind}
	switch m.kind {
	case kindProofHello:
		return append(b, m.nonceP[:]...), nil
	case kindProofNonce:
		return append(b, m.nonceV[:]...), nil
	case kindProofTags:
		b = append(b, m.nonceP[:]...)
		b = append(b, m.nonceV[:]...)
	case kindProofReply:
	default:
		return nil, fmt.Errorf("encode proof: %w: kind %d", ErrMalformedMessage, m.kind)
	}
	if len(m.tags) == 0 || len(m.tags) > MaxProofTags {
		return nil, fmt.Errorf("encode proof: %w: %d tags, 1..%d", ErrMalformedMessage, len(m.tags), MaxProofTags)
	}
	b = binary.AppendUvarint(b, uint64(len(m.tags)))
	for _, t := range m.tags {
		b = append(b, t[:]...)
	}
	return b, nil
}

// maxProofMessage is the largest proof message.
const maxProofMessage = 2 + 2*ProofNonceSize + 2 + MaxProofTags*ProofTagSize

// decodeProofMessage decodes a membership proof message strictly; errors
// wrap ErrMalformedMessage.
func decodeProofMessage(b []byte) (*proofMessage, error) {
	r := &reader{b: b}
	m := &proofMessage{kind: r.header(maxProofMessage, kindProofHello, kindProofNonce, kindProofTags, kindProofReply)}
	switch m.kind {
	case kindProofHello:
		copy(m.nonceP[:], r.take("nonce", ProofNonceSize))
	case kindProofNonce:
		copy(m.nonceV[:], r.take("nonce", ProofNonceSize))
	case kindProofTags, kindProofReply:
		if m.kind == kindProofTags {
			copy(m.nonceP[:], r.take("nonce", ProofNonceSize))
			copy(m.nonceV[:], r.take("nonce", ProofNonceSize))
		}
		n := r.uvarint("tag count", MaxProofTags)
		if r.err == nil && n == 0 {
			r.fail("no tags")
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			var t [ProofTagSize]byte
			copy(t[:], r.take("tag", ProofTagSize))
			m.tags = append(m.tags, t)
		}
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("decode proof: %w", r.err)
	}
	return m, nil
}

// proofTag is HMAC-SHA256(proof key, "skein/v1/proof-tag" || 0x00 || role
// || len(prover) || prover || len(verifier) || verifier || nonceP ||
// nonceV): bound to the topic's secret, to both peer ids (authenticated by
// the connection), to both fresh nonces and to the role.
func (k *TopicKeys) proofTag(role byte, prover, verifier string, nonceP, nonceV *[ProofNonceSize]byte) [ProofTagSize]byte {
	mac := hmac.New(sha256.New, k.proof[:])
	mac.Write([]byte("skein/v1/proof-tag\x00"))
	mac.Write([]byte{role})
	mac.Write(binary.AppendUvarint(nil, uint64(len(prover))))
	mac.Write([]byte(prover))
	mac.Write(binary.AppendUvarint(nil, uint64(len(verifier))))
	mac.Write([]byte(verifier))
	mac.Write(nonceP[:])
	mac.Write(nonceV[:])
	var t [ProofTagSize]byte
	copy(t[:], mac.Sum(nil))
	return t
}

func randomNonce() (n [ProofNonceSize]byte) {
	_, _ = rand.Read(n[:]) // never fails (Go >= 1.24)
	return n
}

// ErrProofFailed: a membership proof run did not complete (the peer
// answered out of protocol). A peer that holds none of the keys is not an
// error: Prove reports false for each.
var ErrProofFailed = errors.New("membership proof failed")

// Prove runs the membership proof with peer over dm, as self (this node's
// peer id), for the topics of keys (at most MaxProofTags), and reports,
// per key, whether peer proved it holds that key too. The peer learns
// which of these topics it shares with self and nothing about the others.
// A replicator runs it with every peer that connects; it is exported for
// tools and tests that act as a peer.
func Prove(ctx context.Context, dm sdk.DirectMessenger, self, peer string, keys []*TopicKeys) ([]bool, error) {
	if len(keys) == 0 || len(keys) > MaxProofTags {
		return nil, fmt.Errorf("prove to %q: %d topics, 1..%d", peer, len(keys), MaxProofTags)
	}
	hello := &proofMessage{kind: kindProofHello, nonceP: randomNonce()}
	raw, err := hello.MarshalBinary()
	if err != nil {
		return nil, err
	}
	raw, err = dm.Request(ctx, peer, ProofProtocol, raw)
	if err != nil {
		return nil, fmt.Errorf("prove to %q: %w", peer, err)
	}
	ch, err := decodeProofMessage(raw)
	if err == nil && ch.kind != kindProofNonce {
		err = fmt.Errorf("%w: kind %d where a nonce was due", ErrMalformedMessage, ch.kind)
	}
	if err != nil {
		return nil, fmt.Errorf("prove to %q: %w: %w", peer, ErrProofFailed, err)
	}
	n := (len(keys) + proofTagPad - 1) / proofTagPad * proofTagPad
	n = min(n, MaxProofTags)
	tags := &proofMessage{kind: kindProofTags, nonceP: hello.nonceP, nonceV: ch.nonceV, tags: make([][ProofTagSize]byte, n)}
	// The real tags sit at random places among random ones.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	shuffle(order)
	for i := range tags.tags {
		_, _ = rand.Read(tags.tags[i][:])
	}
	for i, k := range keys {
		tags.tags[order[i]] = k.proofTag(roleProver, self, peer, &hello.nonceP, &ch.nonceV)
	}
	if raw, err = tags.MarshalBinary(); err != nil {
		return nil, err
	}
	raw, err = dm.Request(ctx, peer, ProofProtocol, raw)
	if err != nil {
		return nil, fmt.Errorf("prove to %q: %w", peer, err)
	}
	reply, err := decodeProofMessage(raw)
	if err == nil && (reply.kind != kindProofReply || len(reply.tags) != n) {
		err = fmt.Errorf("%w: kind %d with %d tags where a reply of %d was due", ErrMalformedMessage, reply.kind, len(reply.tags), n)
	}
	if err != nil {
		return nil, fmt.Errorf("prove to %q: %w: %w", peer, ErrProofFailed, err)
	}
	proven := make([]bool, len(keys))
	for i, k := range keys {
		want := k.proofTag(roleVerifier, self, peer, &hello.nonceP, &ch.nonceV)
		proven[i] = hmac.Equal(want[:], reply.tags[order[i]][:])
	}
	return proven, nil
}

// shuffle permutes s uniformly with crypto/rand.
func shuffle(s []int) {
	for i := len(s) - 1; i > 0; i-- {
		var b [8]byte
		_, _ = rand.Read(b[:])
		j := int(binary.LittleEndian.Uint64(b[:]) % uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
}

// proofChallenge is a verifier's pending nonce for one prover.
type proofChallenge struct {
	nonceP, nonceV [ProofNonceSize]byte
	at             time.Time
}

// proofs is a replicator's membership proof state: the topics each
// connected peer proved, and the verifier's pending challenges.
type proofs struct {
	mu         sync.Mutex
	proven     map[string]map[string]bool // peer -> topics
	challenges map[string]proofChallenge  // prover -> pending nonce
	locks      map[string]chan struct{}   // prover side: one run per peer at a time
}

func newProofs() *proofs {
	return &proofs{proven: map[string]map[string]bool{}, challenges: map[string]proofChallenge{},
		locks: map[string]chan struct{}{}}
}

// has reports whether peer proved topic on its current connection.
func (p *proofs) has(peer, topic string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proven[peer][topic]
}

func (p *proofs) set(peer, topic string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proven[peer] == nil {
		p.proven[peer] = map[string]bool{}
	}
	p.proven[peer][topic] = true
}

// forget drops what peer proved (its connection ended, or a new one
// began: a proof holds for one connection).
func (p *proofs) forget(peer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.proven, peer)
	delete(p.challenges, peer)
}

// forgetTopic drops topic from every peer's proofs.
func (p *proofs) forgetTopic(topic string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ts := range p.proven {
		delete(ts, topic)
	}
}

// lock serialises this node's proof runs to peer (a second hello would
// replace the first's challenge). The lock is a channel, not a mutex: it
// is held across a network round trip, and a goroutine waiting on a
// channel counts as blocked for testing/synctest, whose fake clock then
// advances (sim's virtual clock); one waiting on a mutex does not.
func (p *proofs) lock(peer string) func() {
	p.mu.Lock()
	l := p.locks[peer]
	if l == nil {
		l = make(chan struct{}, 1)
		p.locks[peer] = l
	}
	p.mu.Unlock()
	l <- struct{}{}
	return func() { <-l }
}

// challenge records a fresh verifier nonce for prover's hello.
func (p *proofs) challenge(prover string, nonceP [ProofNonceSize]byte) [ProofNonceSize]byte {
	c := proofChallenge{nonceP: nonceP, nonceV: randomNonce(), at: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.challenges[prover]; !ok && len(p.challenges) >= maxProofChallenges {
		for peer, old := range p.challenges {
			if time.Since(old.at) > proofChallengeTTL {
				delete(p.challenges, peer)
			}
		}
		if len(p.challenges) >= maxProofChallenges {
			return c.nonceV // not kept: the proof fails, as it would with a wrong key
		}
	}
	p.challenges[prover] = c
	return c.nonceV
}

// take consumes prover's challenge if the nonces match it: a transcript
// is good for one run only.
func (p *proofs) take(prover string, nonceP, nonceV [ProofNonceSize]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.challenges[prover]
	if !ok {
		return false
	}
	delete(p.challenges, prover)
	return time.Since(c.at) <= proofChallengeTTL && hmac.Equal(c.nonceP[:], nonceP[:]) && hmac.Equal(c.nonceV[:], nonceV[:])
}

// topicKeys returns the keys of every replicated topic.
func (r *Replicator) topicKeys() []*TopicKeys {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*TopicKeys, 0, len(r.topics))
	for _, ts := range r.topics {
		out = append(out, ts.keys)
	}
	slices.SortFunc(out, func(a, b *TopicKeys) int { return compareStrings(a.Topic, b.Topic) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// handleProof answers the verifier's side of ProofProtocol. Whatever the
// prover holds, the answers have the same shape and size: a nonce, then as
// many tags as it sent, real ones only where it proved a topic this
// replica has.
func (r *Replicator) handleProof(_ context.Context, from string, req []byte) ([]byte, error) {
	if r.isBlocked(from) {
		return nil, fmt.Errorf("proof from %q: %w", from, ErrBlockedPeer)
	}
	m, err := decodeProofMessage(req)
	if err == nil && m.kind != kindProofHello && m.kind != kindProofTags {
		err = fmt.Errorf("%w: kind %d from a prover", ErrMalformedMessage, m.kind)
	}
	if err != nil {
		r.cutOff(from, "proof: "+err.Error())
		return nil, fmt.Errorf("proof from %q: %w", from, err)
	}
	if m.kind == kindProofHello {
		resp := &proofMessage{kind: kindProofNonce, nonceV: r.proofs.challenge(from, m.nonceP)}
		return resp.MarshalBinary()
	}
	reply := &proofMessage{kind: kindProofReply, tags: make([][ProofTagSize]byte, len(m.tags))}
	for i := range reply.tags {
		_, _ = rand.Read(reply.tags[i][:])
	}
	if r.proofs.take(from, m.nonceP, m.nonceV) {
		got := make(map[[ProofTagSize]byte]int, len(m.tags))
		for i, t := range m.tags {
			got[t] = i
		}
		for _, k := range r.topicKeys() {
			i, ok := got[k.proofTag(roleProver, from, r.self, &m.nonceP, &m.nonceV)]
			if !ok {
				continue
			}
			reply.tags[i] = k.proofTag(roleVerifier, from, r.self, &m.nonceP, &m.nonceV)
			r.proved(from, k.Topic)
		}
	}
	return reply.MarshalBinary()
}

// proved records that peer proved topic, and admits it to the topic's
// mesh if the network closes topics.
func (r *Replicator) proved(peer, topic string) {
	r.proofs.set(peer, topic)
	if r.gate == nil {
		return
	}
	r.mu.Lock()
	ctx := r.ctx
	r.mu.Unlock()
	if err := r.gate.AdmitPeer(ctx, topic, peer, true); err != nil {
		r.logger.Debug("admit proven peer to topic", "peer", peer, "topic", topic, "err", err)
	}
}

// prove runs the membership proof with peer for every replicated topic it
// has not proved yet, and returns whether it shares any topic with peer.
func (r *Replicator) prove(ctx context.Context, peer string) (bool, error) {
	if r.direct == nil {
		return false, nil
	}
	unlock := r.proofs.lock(peer)
	defer unlock()
	var todo []*TopicKeys
	shared := false
	for _, k := range r.topicKeys() {
		if r.proofs.has(peer, k.Topic) {
			shared = true
		} else {
			todo = append(todo, k)
		}
	}
	var errs []error
	for len(todo) > 0 {
		batch := todo[:min(len(todo), MaxProofTags)]
		todo = todo[len(batch):]
		ok, err := Prove(ctx, r.direct, r.self, peer, batch)
		if err != nil {
			if errors.Is(err, ErrProofFailed) {
				r.cutOff(peer, err.Error())
			}
			errs = append(errs, err)
			continue
		}
		for i, k := range batch {
			if ok[i] {
				shared = true
				r.proved(peer, k.Topic)
			}
		}
	}
	return shared, errors.Join(errs...)
}
