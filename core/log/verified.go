package log

import "sync"

// verifiedCap bounds the signatures a log remembers having verified.
const verifiedCap = 1024

// verifiedSigs remembers the CIDs of the last entries whose signature
// verified, so that joins running at once from several peers (each
// fetching the same missing entries before either commits) verify each
// entry once. A CID names the block's bytes (a fetched block is decoded
// only under the CID its bytes hash to), so an entry with a remembered CID
// is the entry that verified.
type verifiedSigs struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

func (v *verifiedSigs) has(k string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.set[k]
	return ok
}

func (v *verifiedSigs) add(k string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.set[k]; ok {
		return
	}
	if v.set == nil {
		v.set = map[string]struct{}{}
	}
	if len(v.ring) < verifiedCap {
		v.ring = append(v.ring, k)
	} else {
		delete(v.set, v.ring[v.next])
		v.ring[v.next] = k
		v.next = (v.next + 1) % verifiedCap
	}
	v.set[k] = struct{}{}
}
