package replication

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// WireVersion is the version byte every replication message starts with.
const WireVersion = 1

// Message kinds (the second byte of every message).
const (
	// 1: the announcement before kind 12 (every head's CID sent); refused
	kindDigest       = 2 // pubsub: periodic heads, nothing inline
	kindHeadsRequest = 3 // direct: "/skein/heads/1" request
	kindHeadsReply   = 4 // direct: "/skein/heads/1" response
	// 5 and 6: entries request and response (entries_wire.go)
	kindProofHello = 7  // direct: "/skein/proof/1" prover's nonce
	kindProofNonce = 8  // direct: "/skein/proof/1" verifier's nonce
	kindProofTags  = 9  // direct: "/skein/proof/1" prover's tags
	kindProofReply = 10 // direct: "/skein/proof/1" verifier's tags
	kindSealed     = 11 // pubsub: an announcement or digest sealed under the topic's key
	kindAnnounce   = 12 // pubsub: entries inline, then heads; an inline head is a bit, not a CID
)

// Wire limits. A message beyond any of them is malformed.
const (
	// MaxHeads is the most heads one log carries in one message.
	MaxHeads = 64
	// MaxInline is the most entries one announcement carries inline.
	MaxInline = 64
	// MaxInlineEntry is the largest entry carried inline, in bytes.
	MaxInlineEntry = 4096
	// MaxAnnouncementSize is the largest announcement or digest, in bytes.
	MaxAnnouncementSize = 256 << 10
	// MaxExchangeLogs is the most logs one head-exchange message names.
	MaxExchangeLogs = 1024
	// MaxExchangeSize is the largest head-exchange message, in bytes.
	MaxExchangeSize = 4 << 20
)

// cidLen and cidPrefix: every head is a CIDv1, dag-cbor, sha2-256 CID in
// binary form (the only kind of CID a log entry has).
const cidLen = 36

var cidPrefix = []byte{0x01, 0x71, 0x12, 0x20}

// LogIDSize is the size of a LogID.
const LogIDSize = 16

// LogID names a replicated log on the wire. It is derived from the topic
// and a channel name (LogIDFor), never from the group key, so it tells a
// peer nothing a topic subscriber does not already know.
type LogID [LogIDSize]byte

// String returns the id in hex.
func (id LogID) String() string { return hex.EncodeToString(id[:]) }

// LogIDFor returns the wire id of the log replicated on topic under
// channel: the first 16 bytes of SHA-256("skein/v1/log-id" || 0x00 ||
// topic || 0x00 || channel).
func LogIDFor(topic, channel string) LogID {
	h := sha256.New()
	h.Write([]byte("skein/v1/log-id\x00"))
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write([]byte(channel))
	var id LogID
	copy(id[:], h.Sum(nil))
	return id
}

// Announcement is a pubsub message on a log's topic: the sender's heads of
// one log, with some entries inline (an announcement) or none (a digest).
type Announcement struct {
	// Digest marks a periodic anti-entropy digest (no inline entries).
	Digest bool
	// Log is the log's wire id.
	Log LogID
	// Heads are the sender's heads, 1..MaxHeads, sorted by binary CID.
	Heads []cid.Cid
	// Inline are entry blocks (each's CID is the CIDv1 dag-cbor sha2-256 of
	// its bytes), sorted by that CID, at most MaxInline of at most
	// MaxInlineEntry bytes each.
	Inline [][]byte
}

// LogHeads is one log's heads in a head exchange.
type LogHeads struct {
	Log   LogID
	Heads []cid.Cid // 0..MaxHeads, sorted by binary CID
}

// HeadsExchange is a "/skein/heads/1" request or response: the heads of
// every log the sender names. A response names only logs of the request.
type HeadsExchange struct {
	Response bool
	Logs     []LogHeads // sorted by Log, no duplicates
}

// blockCID returns the CID of an entry block's bytes.
func blockCID(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	m, _ := mh.Encode(sum[:], mh.SHA2_256) // cannot fail for sha2-256 and 32 bytes
	return cid.NewCidV1(cid.DagCBOR, m)
}

func compareCIDs(a, b cid.Cid) int {
	return strings.Compare(a.KeyString(), b.KeyString()) // byte order, without copying
}

// sortHeads returns heads sorted and without duplicates, at most MaxHeads
// (the first ones in CID order).
func sortHeads(heads []cid.Cid) []cid.Cid {
	out := slices.Clone(heads)
	slices.SortFunc(out, compareCIDs)
	out = slices.CompactFunc(out, func(a, b cid.Cid) bool { return a.Equals(b) })
	if len(out) > MaxHeads {
		out = out[:MaxHeads]
	}
	return out
}

func appendHeads(b []byte, heads []cid.Cid) ([]byte, error) {
	if len(heads) > MaxHeads {
		return nil, fmt.Errorf("%d heads, at most %d", len(heads), MaxHeads)
	}
	b = binary.AppendUvarint(b, uint64(len(heads)))
	for i, h := range heads {
		k := h.KeyString()
		if len(k) != cidLen || k[:len(cidPrefix)] != string(cidPrefix) {
			return nil, fmt.Errorf("head %s is not a log entry cid", h)
		}
		if i > 0 && compareCIDs(heads[i-1], h) >= 0 {
			return nil, fmt.Errorf("heads not sorted or duplicated at %d", i)
		}
		b = append(b, k...)
	}
	return b, nil
}

// MarshalBinary encodes the announcement (see docs/replication.md). An
// announcement (kind 12) carries its inline entries first, then a bitmask
// over them (bit i: inline entry i is a head), then only the heads that
// are not inline: an inline head's CID is computed from its bytes, so it
// is not sent. A digest (kind 2) is a plain head list.
func (a *Announcement) MarshalBinary() ([]byte, error) {
	if a.Digest && len(a.Inline) > 0 {
		return nil, fmt.Errorf("encode digest: %w: a digest carries no inline entries", ErrMalformedMessage)
	}
	if len(a.Heads) == 0 {
		return nil, fmt.Errorf("encode announcement: %w: no heads", ErrMalformedMessage)
	}
	if len(a.Heads) > MaxHeads {
		return nil, fmt.Errorf("encode announcement: %w: %d heads, at most %d", ErrMalformedMessage, len(a.Heads), MaxHeads)
	}
	if a.Digest {
		b := append(make([]byte, 0, 2+LogIDSize+1+cidLen*len(a.Heads)+1), WireVersion, kindDigest)
		b = append(b, a.Log[:]...)
		b, err := appendHeads(b, a.Heads)
		if err != nil {
			return nil, fmt.Errorf("encode digest: %w: %v", ErrMalformedMessage, err)
		}
		return append(b, 0), nil // inline count, always 0
	}
	if len(a.Inline) > MaxInline {
		return nil, fmt.Errorf("encode announcement: %w: %d inline entries, at most %d", ErrMalformedMessage, len(a.Inline), MaxInline)
	}
	b := append(make([]byte, 0, 2+LogIDSize+1+cidLen*len(a.Heads)), WireVersion, kindAnnounce)
	b = append(b, a.Log[:]...)
	b = binary.AppendUvarint(b, uint64(len(a.Inline)))
	cids := make([]cid.Cid, len(a.Inline))
	for i, blk := range a.Inline {
		if len(blk) == 0 || len(blk) > MaxInlineEntry {
			return nil, fmt.Errorf("encode announcement: %w: inline entry of %d bytes", ErrMalformedMessage, len(blk))
		}
		cids[i] = blockCID(blk)
		if i > 0 && compareCIDs(cids[i-1], cids[i]) >= 0 {
			return nil, fmt.Errorf("encode announcement: %w: inline entries not sorted by cid", ErrMalformedMessage)
		}
		b = binary.AppendUvarint(b, uint64(len(blk)))
		b = append(b, blk...)
	}
	for i := 1; i < len(a.Heads); i++ {
		if compareCIDs(a.Heads[i-1], a.Heads[i]) >= 0 {
			return nil, fmt.Errorf("encode announcement: %w: heads not sorted or duplicated at %d", ErrMalformedMessage, i)
		}
	}
	mask := make([]byte, (len(a.Inline)+7)/8)
	var rest []cid.Cid
	for _, h := range a.Heads {
		if i, ok := slices.BinarySearchFunc(cids, h, compareCIDs); ok {
			mask[i/8] |= 1 << (i % 8)
		} else {
			rest = append(rest, h)
		}
	}
	b = append(b, mask...)
	b, err := appendHeads(b, rest)
	if err != nil {
		return nil, fmt.Errorf("encode announcement: %w: %v", ErrMalformedMessage, err)
	}
	if len(b) > MaxAnnouncementSize {
		return nil, fmt.Errorf("encode announcement: %w: %d bytes, at most %d", ErrMalformedMessage, len(b), MaxAnnouncementSize)
	}
	return b, nil
}

// MarshalBinary encodes the head-exchange message.
func (x *HeadsExchange) MarshalBinary() ([]byte, error) {
	kind := byte(kindHeadsRequest)
	if x.Response {
		kind = kindHeadsReply
	}
	if len(x.Logs) > MaxExchangeLogs {
		return nil, fmt.Errorf("encode heads exchange: %w: %d logs, at most %d", ErrMalformedMessage, len(x.Logs), MaxExchangeLogs)
	}
	b := []byte{WireVersion, kind}
	b = binary.AppendUvarint(b, uint64(len(x.Logs)))
	for i, lh := range x.Logs {
		if i > 0 && bytes.Compare(x.Logs[i-1].Log[:], lh.Log[:]) >= 0 {
			return nil, fmt.Errorf("encode heads exchange: %w: logs not sorted or duplicated", ErrMalformedMessage)
		}
		b = append(b, lh.Log[:]...)
		var err error
		if b, err = appendHeads(b, lh.Heads); err != nil {
			return nil, fmt.Errorf("encode heads exchange: %w: log %s: %v", ErrMalformedMessage, lh.Log, err)
		}
	}
	if len(b) > MaxExchangeSize {
		return nil, fmt.Errorf("encode heads exchange: %w: %d bytes", ErrMalformedMessage, len(b))
	}
	return b, nil
}

// reader decodes strictly: minimal uvarints, bounded counts, no trailing bytes.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformedMessage}, args...)...)
	}
}

func (r *reader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint for %s", what)
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		r.fail("non-minimal varint for %s", what)
		return 0
	}
	if v > max {
		r.fail("%s is %d, at most %d", what, v, max)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("truncated %s", what)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) logID() LogID {
	var id LogID
	copy(id[:], r.take("log id", LogIDSize))
	return id
}

func (r *reader) heads(min int) []cid.Cid { return r.list("head", MaxHeads, min) }

// list reads a count (min..max) and that many sorted, distinct entry CIDs.
func (r *reader) list(what string, max uint64, min int) []cid.Cid {
	n := r.uvarint(what+" count", max)
	if r.err == nil && int(n) < min {
		r.fail("%d %ss, at least %d", n, what, min)
	}
	var heads []cid.Cid
	for i := uint64(0); i < n && r.err == nil; i++ {
		raw := r.take(what, cidLen)
		if r.err != nil {
			break
		}
		if !bytes.HasPrefix(raw, cidPrefix) {
			r.fail("%s %d is not a CIDv1 dag-cbor sha2-256 cid", what, i)
			break
		}
		c, err := cid.Cast(raw)
		if err != nil {
			r.fail("%s %d: %v", what, i, err)
			break
		}
		if i > 0 && compareCIDs(heads[i-1], c) >= 0 {
			r.fail("%ss not sorted or duplicated at %d", what, i)
			break
		}
		heads = append(heads, c)
	}
	return heads
}

func (r *reader) header(maxSize int, kinds ...byte) byte {
	if len(r.b) > maxSize {
		r.fail("%d bytes, at most %d", len(r.b), maxSize)
		return 0
	}
	h := r.take("header", 2)
	if r.err != nil {
		return 0
	}
	if h[0] != WireVersion {
		r.fail("version %d, want %d", h[0], WireVersion)
		return 0
	}
	if !slices.Contains(kinds, h[1]) {
		r.fail("unexpected message kind %d", h[1])
		return 0
	}
	return h[1]
}

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
}

// DecodeAnnouncement decodes a pubsub message strictly: any deviation from
// the canonical encoding of a well-formed announcement or digest is an
// error wrapping ErrMalformedMessage (an announcement of kind 1, the
// format before kind 12, is one). Inline blocks alias b.
func DecodeAnnouncement(b []byte) (*Announcement, error) {
	r := &reader{b: b}
	kind := r.header(MaxAnnouncementSize, kindAnnounce, kindDigest)
	a := &Announcement{Digest: kind == kindDigest}
	a.Log = r.logID()
	if a.Digest {
		a.Heads = r.heads(1)
		if n := r.uvarint("inline count", MaxInline); r.err == nil && n != 0 {
			r.fail("digest with %d inline entries", n)
		}
	} else {
		a.Heads, a.Inline = r.announcement()
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("decode announcement: %w", r.err)
	}
	return a, nil
}

// announcement reads what follows the log id of kind 12: the inline
// entries, the bitmask of those that are heads (no bit set beyond the
// inline count), and the other heads, none of them an inline entry's
// CID (it would have been a bit). The heads returned are all of them,
// sorted.
func (r *reader) announcement() (heads []cid.Cid, inline [][]byte) {
	n := r.uvarint("inline count", MaxInline)
	cids := make([]cid.Cid, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		size := r.uvarint("inline entry size", MaxInlineEntry)
		if r.err == nil && size == 0 {
			r.fail("empty inline entry")
		}
		blk := r.take("inline entry", int(size))
		if r.err != nil {
			break
		}
		c := blockCID(blk)
		if i > 0 && compareCIDs(cids[i-1], c) >= 0 {
			r.fail("inline entries not sorted by cid or duplicated at %d", i)
			break
		}
		cids = append(cids, c)
		inline = append(inline, blk)
	}
	mask := r.take("inline-head bitmask", int(n+7)/8)
	if r.err != nil {
		return nil, nil
	}
	if n%8 != 0 && mask[len(mask)-1]>>(n%8) != 0 {
		r.fail("inline-head bit set beyond the %d inline entries", n)
		return nil, nil
	}
	for i, c := range cids {
		if mask[i/8]&(1<<(i%8)) != 0 {
			heads = append(heads, c)
		}
	}
	rest := r.list("head", MaxHeads-uint64(len(heads)), 0)
	if r.err != nil {
		return nil, nil
	}
	if len(heads)+len(rest) == 0 {
		r.fail("0 heads, at least 1")
		return nil, nil
	}
	for i, h := range rest {
		if _, ok := slices.BinarySearchFunc(cids, h, compareCIDs); ok {
			r.fail("head %d is an inline entry's cid (it is a bit)", i)
			return nil, nil
		}
	}
	heads = append(heads, rest...)
	slices.SortFunc(heads, compareCIDs)
	return heads, inline
}

// DecodeHeadsExchange decodes a "/skein/heads/1" request or response
// strictly; errors wrap ErrMalformedMessage.
func DecodeHeadsExchange(b []byte) (*HeadsExchange, error) {
	r := &reader{b: b}
	kind := r.header(MaxExchangeSize, kindHeadsRequest, kindHeadsReply)
	x := &HeadsExchange{Response: kind == kindHeadsReply}
	n := r.uvarint("log count", MaxExchangeLogs)
	for i := uint64(0); i < n && r.err == nil; i++ {
		id := r.logID()
		if r.err == nil && i > 0 && bytes.Compare(x.Logs[i-1].Log[:], id[:]) >= 0 {
			r.fail("logs not sorted or duplicated at %d", i)
			break
		}
		heads := r.heads(0)
		x.Logs = append(x.Logs, LogHeads{Log: id, Heads: heads})
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("decode heads exchange: %w", r.err)
	}
	return x, nil
}
