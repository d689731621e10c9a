package replication

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Message kinds of the bulk entry fetch ("/skein/entries/1").
const (
	kindEntriesRequest = 5
	kindEntriesReply   = 6
)

// Wire limits of the bulk entry fetch. A message beyond any of them is
// malformed.
const (
	// MaxEntriesWant is the most CIDs an entries request wants.
	MaxEntriesWant = MaxHeads
	// MaxEntriesHave is the most heads an entries request says it has.
	MaxEntriesHave = MaxHeads
	// MaxEntriesMore is the most continuation CIDs an entries response names.
	MaxEntriesMore = MaxHeads
	// MaxEntriesBatch is the most entry blocks one entries response carries.
	MaxEntriesBatch = 4096
	// MaxEntriesBytes is the most block bytes one entries response carries
	// (and the largest byte budget a request may ask for).
	MaxEntriesBytes = 2 << 20
	// MaxEntryBlock is the largest entry block an entries response carries
	// (log.DefaultMaxEntrySize).
	MaxEntryBlock = 1 << 20
	// MaxEntriesMessage is the largest entries request or response, in bytes.
	MaxEntriesMessage = MaxEntriesBytes + MaxEntriesBatch*3 + 64<<10
)

// EntriesRequest is a "/skein/entries/1" request: send me the entries of
// log Log reachable from Want that are not reachable from Have, newest
// first, at most MaxEntries blocks and about MaxBytes bytes.
type EntriesRequest struct {
	Log LogID
	// Want are the CIDs to walk down from, 1..MaxEntriesWant, sorted by
	// binary CID.
	Want []cid.Cid
	// Have are the requester's heads, 0..MaxEntriesHave, sorted by binary
	// CID: nothing reachable from them needs to be sent.
	Have []cid.Cid
	// MaxEntries (1..MaxEntriesBatch) and MaxBytes (1..MaxEntriesBytes)
	// bound the response: at most MaxEntries blocks, whose sizes add up to
	// at most MaxBytes unless the first block alone is larger.
	MaxEntries int
	MaxBytes   int
}

// EntriesResponse is a "/skein/entries/1" response.
type EntriesResponse struct {
	Log LogID
	// Blocks are entry blocks (each one's CID is the CIDv1 dag-cbor
	// sha2-256 of its bytes), in walk order: each one is wanted or named
	// under next or refs by an earlier one. No duplicates.
	Blocks [][]byte
	// More is the continuation, 0..MaxEntriesMore CIDs sorted by binary
	// CID: entries the walk reached but did not send (a limit stopped it),
	// each wanted or named by a block of this response, none sent, and
	// none at all if no block is sent. Asking for them continues the walk.
	More []cid.Cid
}

// MarshalBinary encodes the request (see docs/replication.md).
func (x *EntriesRequest) MarshalBinary() ([]byte, error) {
	if len(x.Want) == 0 || len(x.Want) > MaxEntriesWant {
		return nil, fmt.Errorf("encode entries request: %w: %d wanted, want 1..%d", ErrMalformedMessage, len(x.Want), MaxEntriesWant)
	}
	if x.MaxEntries < 1 || x.MaxEntries > MaxEntriesBatch || x.MaxBytes < 1 || x.MaxBytes > MaxEntriesBytes {
		return nil, fmt.Errorf("encode entries request: %w: limits %d entries / %d bytes out of range [1,%d]/[1,%d]",
			ErrMalformedMessage, x.MaxEntries, x.MaxBytes, MaxEntriesBatch, MaxEntriesBytes)
	}
	b := append(make([]byte, 0, 2+LogIDSize+2+cidLen*(len(x.Want)+len(x.Have))+8), WireVersion, kindEntriesRequest)
	b = append(b, x.Log[:]...)
	b, err := appendHeads(b, x.Want)
	if err != nil {
		return nil, fmt.Errorf("encode entries request: %w: want: %v", ErrMalformedMessage, err)
	}
	if b, err = appendHeads(b, x.Have); err != nil {
		return nil, fmt.Errorf("encode entries request: %w: have: %v", ErrMalformedMessage, err)
	}
	b = binary.AppendUvarint(b, uint64(x.MaxEntries))
	b = binary.AppendUvarint(b, uint64(x.MaxBytes))
	return b, nil
}

// MarshalBinary encodes the response (see docs/replication.md).
func (x *EntriesResponse) MarshalBinary() ([]byte, error) {
	if len(x.Blocks) > MaxEntriesBatch {
		return nil, fmt.Errorf("encode entries response: %w: %d blocks, at most %d", ErrMalformedMessage, len(x.Blocks), MaxEntriesBatch)
	}
	if len(x.More) > MaxEntriesMore {
		return nil, fmt.Errorf("encode entries response: %w: %d continuation cids, at most %d", ErrMalformedMessage, len(x.More), MaxEntriesMore)
	}
	size := 0
	for _, blk := range x.Blocks {
		size += len(blk)
	}
	if size > MaxEntriesBytes {
		return nil, fmt.Errorf("encode entries response: %w: %d block bytes, at most %d", ErrMalformedMessage, size, MaxEntriesBytes)
	}
	b := append(make([]byte, 0, 2+LogIDSize+size+3*len(x.Blocks)+cidLen*len(x.More)+8), WireVersion, kindEntriesReply)
	b = append(b, x.Log[:]...)
	b = binary.AppendUvarint(b, uint64(len(x.Blocks)))
	seen := make(map[string]struct{}, len(x.Blocks))
	for _, blk := range x.Blocks {
		if len(blk) == 0 || len(blk) > MaxEntryBlock {
			return nil, fmt.Errorf("encode entries response: %w: block of %d bytes", ErrMalformedMessage, len(blk))
		}
		k := blockCID(blk).KeyString()
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("encode entries response: %w: duplicate block", ErrMalformedMessage)
		}
		seen[k] = struct{}{}
		b = binary.AppendUvarint(b, uint64(len(blk)))
		b = append(b, blk...)
	}
	b, err := appendHeads(b, x.More)
	if err != nil {
		return nil, fmt.Errorf("encode entries response: %w: continuation: %v", ErrMalformedMessage, err)
	}
	for _, c := range x.More {
		if _, sent := seen[c.KeyString()]; sent {
			return nil, fmt.Errorf("encode entries response: %w: continuation names a block sent", ErrMalformedMessage)
		}
	}
	return b, nil
}

// DecodeEntriesRequest decodes a "/skein/entries/1" request strictly;
// errors wrap ErrMalformedMessage.
func DecodeEntriesRequest(b []byte) (*EntriesRequest, error) {
	r := &reader{b: b}
	r.header(MaxEntriesMessage, kindEntriesRequest)
	x := &EntriesRequest{Log: r.logID()}
	x.Want = r.list("wanted cid", MaxEntriesWant, 1)
	x.Have = r.list("had head", MaxEntriesHave, 0)
	x.MaxEntries = int(r.uvarint("max entries", MaxEntriesBatch))
	x.MaxBytes = int(r.uvarint("max bytes", MaxEntriesBytes))
	if r.err == nil && (x.MaxEntries == 0 || x.MaxBytes == 0) {
		r.fail("zero limit")
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("decode entries request: %w", r.err)
	}
	return x, nil
}

// DecodeEntriesResponse decodes a "/skein/entries/1" response strictly:
// bounded counts and sizes, no duplicate block, a sorted continuation that
// names no block sent. Whether the blocks answer the request is checked
// apart (the requester walks them). Errors wrap ErrMalformedMessage;
// blocks alias b.
func DecodeEntriesResponse(b []byte) (*EntriesResponse, error) {
	r := &reader{b: b}
	r.header(MaxEntriesMessage, kindEntriesReply)
	x := &EntriesResponse{Log: r.logID()}
	n := r.uvarint("block count", MaxEntriesBatch)
	seen := make(map[string]struct{}, min(n, 256))
	total := 0
	for i := uint64(0); i < n && r.err == nil; i++ {
		size := r.uvarint("block size", MaxEntryBlock)
		if r.err == nil && size == 0 {
			r.fail("empty block %d", i)
		}
		if total += int(size); r.err == nil && total > MaxEntriesBytes {
			r.fail("blocks over %d bytes", MaxEntriesBytes)
		}
		blk := r.take("block", int(size))
		if r.err != nil {
			break
		}
		k := blockCID(blk).KeyString()
		if _, dup := seen[k]; dup {
			r.fail("duplicate block %d", i)
			break
		}
		seen[k] = struct{}{}
		x.Blocks = append(x.Blocks, blk)
	}
	x.More = r.list("continuation cid", MaxEntriesMore, 0)
	for i, c := range x.More {
		if _, sent := seen[c.KeyString()]; sent && r.err == nil {
			r.fail("continuation cid %d names a block sent", i)
		}
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("decode entries response: %w", r.err)
	}
	return x, nil
}
