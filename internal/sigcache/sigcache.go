// Package sigcache remembers Ed25519 signatures that verified, for the
// whole process (core/crypto and core/log verify through it).
package sigcache

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// DefaultSize is how many verified signatures the process
// remembers by default (about 100 bytes each).
const DefaultSize = 1 << 14

// verifyCache remembers (public key, message, signature) triples whose
// Ed25519 signature verified, by the SHA-256 of the three, so that the
// same signature checked again (a device certificate decoded with every
// metadata entry that names it; the same entry joined from several peers;
// in a simulation, every in-process node checking the same entries) costs
// a hash, not a verification. Ed25519 verification is deterministic, so a
// triple that verified once verifies again; only successes are kept, so a
// forged signature is verified (and rejected) every time. It is bounded:
// two generations of at most size/2 each per shard; when the newer fills,
// the older is dropped.
type verifyCache struct {
	size   atomic.Int64 // capacity; 0: off
	shards [16]verifyShard
	hits   atomic.Uint64
	misses atomic.Uint64
}

type verifyShard struct {
	mu       sync.Mutex
	cur, old map[[32]byte]struct{}
}

var sigCache = func() *verifyCache {
	c := &verifyCache{}
	c.size.Store(DefaultSize)
	return c
}()

// SetSize sets how many verified signatures the process
// remembers (0 turns the cache off) and empties it. One process holding
// many nodes (a simulation) shares it between them: a signature one node
// verified is not verified again by the others.
func SetSize(n int) {
	sigCache.size.Store(int64(max(n, 0)))
	for i := range sigCache.shards {
		s := &sigCache.shards[i]
		s.mu.Lock()
		s.cur, s.old = nil, nil
		s.mu.Unlock()
	}
}

// Size returns the cache's capacity (0: off).
func Size() int { return int(sigCache.size.Load()) }

// Stats returns how many verifications the cache spared (hits)
// and how many it did not (misses) since the process started.
func Stats() (hits, misses uint64) {
	return sigCache.hits.Load(), sigCache.misses.Load()
}

// Verify reports whether sig is pub's valid Ed25519 signature of
// msg, like ed25519.Verify, through the process's cache of verified
// signatures (SetSize).
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	size := sigCache.size.Load()
	if size == 0 {
		return ed25519.Verify(pub, msg, sig)
	}
	h := sha256.New()
	h.Write(pub)
	h.Write(sig)
	h.Write(msg)
	var k [32]byte
	h.Sum(k[:0])
	s := &sigCache.shards[k[0]%byte(len(sigCache.shards))]
	s.mu.Lock()
	_, ok := s.cur[k]
	if !ok {
		_, ok = s.old[k]
	}
	s.mu.Unlock()
	if ok {
		sigCache.hits.Add(1)
		return true
	}
	sigCache.misses.Add(1)
	if !ed25519.Verify(pub, msg, sig) {
		return false
	}
	half := max(int(size)/len(sigCache.shards)/2, 1)
	s.mu.Lock()
	if s.cur == nil {
		s.cur = make(map[[32]byte]struct{})
	}
	if len(s.cur) >= half {
		s.old, s.cur = s.cur, make(map[[32]byte]struct{})
	}
	s.cur[k] = struct{}{}
	s.mu.Unlock()
	return true
}
