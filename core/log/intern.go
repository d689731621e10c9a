package log

import (
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
)

// cidIntern shares the CIDs decoded from entries' links between every
// log of the process: a link decoded again (the same entry read by another
// log, or by another node of a simulation running in one process) yields
// the cid.Cid decoded first, not a new copy of its 36 bytes. It is off
// unless SetCIDInternSize turned it on, and bounded: two generations of
// at most size/2 CIDs; when the newer fills, the older is dropped. A CID
// is immutable and names the same bytes whoever decoded it, so sharing one
// changes nothing but memory.
var cidIntern struct {
	size     atomic.Int64
	mu       sync.Mutex
	cur, old map[[cidLen]byte]cid.Cid
}

// SetCIDInternSize sets how many decoded CIDs the process shares between
// its logs (0, the default, turns sharing off) and empties the table. A
// simulation of many nodes in one process (package sim) turns it on: each
// node's metadata then holds references to one copy of each link.
func SetCIDInternSize(n int) {
	cidIntern.mu.Lock()
	defer cidIntern.mu.Unlock()
	cidIntern.size.Store(int64(max(n, 0)))
	cidIntern.cur, cidIntern.old = nil, nil
}

// CIDInternSize returns the size SetCIDInternSize set.
func CIDInternSize() int { return int(cidIntern.size.Load()) }

// castLink is cid.Cast for a link's cidLen bytes, through the intern
// table when it is on.
func castLink(raw []byte) (cid.Cid, error) {
	if cidIntern.size.Load() == 0 || len(raw) != cidLen {
		return cid.Cast(raw)
	}
	if c, ok := lookupCID([cidLen]byte(raw)); ok {
		return c, nil
	}
	c, err := cid.Cast(raw)
	if err != nil {
		return c, err
	}
	return storeCID([cidLen]byte(raw), c), nil
}

// internCID returns the table's copy of c (c itself, now in the table, if
// it had none), or c when the table is off.
func internCID(c cid.Cid) cid.Cid {
	s := c.KeyString()
	if cidIntern.size.Load() == 0 || len(s) != cidLen {
		return c
	}
	var k [cidLen]byte
	copy(k[:], s)
	if got, ok := lookupCID(k); ok {
		return got
	}
	return storeCID(k, c)
}

func lookupCID(k [cidLen]byte) (cid.Cid, bool) {
	cidIntern.mu.Lock()
	defer cidIntern.mu.Unlock()
	c, ok := cidIntern.cur[k]
	if !ok {
		c, ok = cidIntern.old[k]
	}
	return c, ok
}

func storeCID(k [cidLen]byte, c cid.Cid) cid.Cid {
	cidIntern.mu.Lock()
	defer cidIntern.mu.Unlock()
	size := int(cidIntern.size.Load())
	if size == 0 {
		return c
	}
	if got, ok := cidIntern.cur[k]; ok {
		return got // stored meanwhile
	}
	if cidIntern.cur == nil {
		cidIntern.cur = make(map[[cidLen]byte]cid.Cid)
	}
	if len(cidIntern.cur) >= max(size/2, 1) {
		cidIntern.old, cidIntern.cur = cidIntern.cur, make(map[[cidLen]byte]cid.Cid)
	}
	cidIntern.cur[k] = c
	return c
}
