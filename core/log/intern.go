package log

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/internal/intern"
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

// entryIntern shares decoded entries between every log of the process,
// by CID, the same way (SetEntryInternSize; off by default): a block
// decoded again (by another node of a simulation, or served to a peer)
// yields the entry decoded first when its bytes are the same, without
// decoding or hashing them again. A decoded entry is never modified (its
// fields alias its block's bytes, which nobody may modify either); the
// table keeps its own copy of those bytes. Bytes that differ from the
// table's under the same CID are decoded as usual (and fail its hash).
var entryIntern intern.Table[[cidLen]byte, *Entry]

// SetEntryInternSize sets how many decoded entries the process shares
// between its logs (0, the default, turns sharing off) and empties the
// table. Package sim turns it on for its in-process nodes.
func SetEntryInternSize(n int) { entryIntern.SetSize(n) }

// EntryInternSize returns the size SetEntryInternSize set.
func EntryInternSize() int { return entryIntern.Size() }

// sharedEntry returns the table's entry for c if its bytes are data.
func sharedEntry(c cid.Cid, data []byte) *Entry {
	s := c.KeyString()
	if entryIntern.Size() == 0 || len(s) != cidLen {
		return nil
	}
	e, _ := entryIntern.Get([cidLen]byte([]byte(s)))
	if e == nil || !bytes.Equal(e.raw, data) {
		return nil
	}
	return e
}

// shareEntry decodes data (a block whose hash the caller checked against
// c) into a new entry the table keeps, on its own copy of data; it
// returns nil when the table is off.
func shareEntry(c cid.Cid, data []byte) (*Entry, error) {
	s := c.KeyString()
	if entryIntern.Size() == 0 || len(s) != cidLen {
		return nil, nil
	}
	e, err := decodeEntry(bytes.Clone(data))
	if err != nil {
		return nil, err
	}
	e.cid = internCID(c)
	return entryIntern.Add([cidLen]byte([]byte(s)), e, func(got *Entry) bool {
		return got != nil && bytes.Equal(got.raw, e.raw) // decoded meanwhile
	}), nil
}
