package log

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/internal/sigcache"
)

// Version is the entry format version this package writes and reads.
const Version = 1

// MaxIDLength is the longest log id, in bytes.
const MaxIDLength = 256

// SignatureDomain prefixes the bytes an entry signature covers, so an entry
// signature can never be mistaken for any other Skein signature.
const SignatureDomain = "skein/log/entry/v1\x00"

// cidLen is the binary length of every CID this log uses: CIDv1 (0x01),
// dag-cbor (0x71), sha2-256 multihash (0x12 0x20 + 32 bytes).
const cidLen = 36

var cidPrefix = [4]byte{0x01, 0x71, 0x12, 0x20}

// Entry is one log entry. Entries returned by this package are immutable:
// do not modify their fields or slices.
type Entry struct {
	// ID is the log id (a CBOR byte string on the wire).
	ID string
	// Payload is opaque to the log (the group layer seals it).
	Payload []byte
	// Time is the Lamport time: greater than every time under Next.
	Time uint64
	// Next are the heads the writer saw, sorted by binary CID.
	Next []cid.Cid
	// Refs are skip pointers to older entries (fetch hints), sorted by
	// binary CID, disjoint from Next.
	Refs []cid.Cid
	// Writer is the writer's Ed25519 public key (the Lamport clock's id).
	Writer ed25519.PublicKey
	// Sig is the writer's signature (see SignatureDomain and docs/protocol.md).
	Sig []byte

	cid cid.Cid
	raw []byte
}

// CID returns the entry's block CID.
func (e *Entry) CID() cid.Cid { return e.cid }

// Bytes returns the entry's block bytes (its canonical dag-cbor encoding).
// The caller must not modify them.
func (e *Entry) Bytes() []byte { return e.raw }

// Fixed key encodings in dag-cbor map order (length first, then bytewise).
var (
	keyNext    = []byte{0x61, 'n'}
	keyPayload = []byte{0x61, 'p'}
	keyRefs    = []byte{0x61, 'r'}
	keySig     = []byte{0x61, 's'}
	keyTime    = []byte{0x61, 't'}
	keyVersion = []byte{0x61, 'v'}
	keyWriter  = []byte{0x61, 'w'}
	keyID      = []byte{0x62, 'i', 'd'}
)

const (
	majUint  = 0
	majBytes = 2
	majText  = 3
	majArray = 4
	majMap   = 5
	majTag   = 6
	tagCID   = 42
)

func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}

func appendBytes(b []byte, p []byte) []byte {
	return append(appendHead(b, majBytes, uint64(len(p))), p...)
}

func appendLinks(b []byte, links []cid.Cid) []byte {
	b = appendHead(b, majArray, uint64(len(links)))
	for _, l := range links {
		b = append(b, 0xd8, tagCID, 0x58, cidLen+1, 0x00)
		b = append(b, l.KeyString()...)
	}
	return b
}

// appendEncoding appends the canonical dag-cbor encoding of e; without sig
// it is the 7-field map the signature covers.
func appendEncoding(b []byte, e *Entry, withSig bool) []byte {
	if withSig {
		b = append(b, majMap<<5|8)
	} else {
		b = append(b, majMap<<5|7)
	}
	b = appendLinks(append(b, keyNext...), e.Next)
	b = appendBytes(append(b, keyPayload...), e.Payload)
	b = appendLinks(append(b, keyRefs...), e.Refs)
	if withSig {
		b = appendBytes(append(b, keySig...), e.Sig)
	}
	b = appendHead(append(b, keyTime...), majUint, e.Time)
	b = appendHead(append(b, keyVersion...), majUint, Version)
	b = appendBytes(append(b, keyWriter...), e.Writer)
	b = appendBytes(append(b, keyID...), []byte(e.ID))
	return b
}

func encodedSizeHint(e *Entry) int {
	return 160 + len(e.ID) + len(e.Payload) + 41*(len(e.Next)+len(e.Refs))
}

// signingBytes returns SignatureDomain followed by the 7-field encoding.
func signingBytes(e *Entry) []byte {
	b := make([]byte, 0, len(SignatureDomain)+encodedSizeHint(e))
	return appendEncoding(append(b, SignatureDomain...), e, false)
}

// checkLinks validates a sorted, duplicate-free list of well-formed CIDs.
func checkLinks(field string, links []cid.Cid) error {
	for i, l := range links {
		k := l.KeyString()
		if len(k) != cidLen || k[:4] != string(cidPrefix[:]) {
			return fmt.Errorf("%w: %s[%d] is not a CIDv1 dag-cbor sha2-256 link", ErrMalformed, field, i)
		}
		if i > 0 && links[i-1].KeyString() >= k {
			return fmt.Errorf("%w: %s not sorted or has duplicates", ErrMalformed, field)
		}
	}
	return nil
}

func checkFields(e *Entry) error {
	if len(e.ID) == 0 || len(e.ID) > MaxIDLength {
		return fmt.Errorf("%w: log id has %d bytes, want 1..%d", ErrMalformed, len(e.ID), MaxIDLength)
	}
	if len(e.Writer) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: writer key has %d bytes, want %d", ErrMalformed, len(e.Writer), ed25519.PublicKeySize)
	}
	if len(e.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature has %d bytes, want %d", ErrMalformed, len(e.Sig), ed25519.SignatureSize)
	}
	if err := checkLinks("next", e.Next); err != nil {
		return err
	}
	if err := checkLinks("refs", e.Refs); err != nil {
		return err
	}
	// Both lists are sorted: merge-walk for an element in both.
	for i, j := 0, 0; i < len(e.Next) && j < len(e.Refs); {
		a, b := e.Next[i].KeyString(), e.Refs[j].KeyString()
		switch {
		case a == b:
			return fmt.Errorf("%w: %s is both in next and refs", ErrMalformed, e.Next[i])
		case a < b:
			i++
		default:
			j++
		}
	}
	return nil
}

// sealEntry signs e with s and sets its encoding and CID.
func sealEntry(e *Entry, s Signer) error {
	var scratch []byte
	return sealEntryBuf(e, s, s.PublicKey(), &scratch)
}

// sealEntryBuf is sealEntry with the writer key given and a scratch buffer
// for the signing bytes. The entry's Payload ends up aliasing its encoding.
func sealEntryBuf(e *Entry, s Signer, writer ed25519.PublicKey, scratch *[]byte) error {
	e.Writer = writer
	e.Sig = make([]byte, ed25519.SignatureSize) // placeholder for checkFields
	if err := checkFields(e); err != nil {
		return err
	}
	msg := appendEncoding(append((*scratch)[:0], SignatureDomain...), e, false)
	*scratch = msg
	sig, err := s.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign entry: %w", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("sign entry: signer returned %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	e.Sig = sig
	raw := appendEncoding(make([]byte, 0, encodedSizeHint(e)), e, true)
	// The payload's bytes sit right after the map head, next, the "p" key
	// and the payload's byte-string head.
	off := 1 + len(keyNext) + headLen(uint64(len(e.Next))) + 41*len(e.Next) +
		len(keyPayload) + headLen(uint64(len(e.Payload)))
	e.Payload = raw[off : off+len(e.Payload) : off+len(e.Payload)]
	e.raw = raw
	e.cid = blockCID(raw)
	return nil
}

// headLen is the size of a canonical CBOR head carrying n.
func headLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

// blockCID returns the CIDv1 dag-cbor sha2-256 of data.
func blockCID(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	h := make([]byte, 0, 34)
	h = append(append(h, 0x12, 0x20), sum[:]...)
	return cid.NewCidV1(cid.DagCBOR, mh.Multihash(h))
}

// VerifySignature checks the entry's signature under its writer key.
func (e *Entry) VerifySignature() error {
	if len(e.Writer) != ed25519.PublicKeySize || !sigcache.Verify(e.Writer, signingBytes(e), e.Sig) {
		return fmt.Errorf("entry %s: %w", e.cid, ErrBadSignature)
	}
	return nil
}

// DecodeBlock decodes the block data fetched under c. It checks that c is a
// CIDv1 dag-cbor sha2-256 CID, that data hashes to it, and that data is the
// canonical encoding of a well-formed entry (see docs/protocol.md). It does
// not check the signature (VerifySignature), the size or clock limits, the
// log id or write access: a Log does all of that in Join.
func DecodeBlock(c cid.Cid, data []byte) (*Entry, error) {
	k := c.KeyString()
	if len(k) != cidLen || k[:4] != string(cidPrefix[:]) {
		return nil, fmt.Errorf("decode block %s: %w: not a CIDv1 dag-cbor sha2-256 cid", c, ErrMalformed)
	}
	if e := sharedEntry(c, data); e != nil {
		return e, nil // these very bytes hashed to c before (see SetEntryInternSize)
	}
	sum := sha256.Sum256(data)
	if k[4:] != string(sum[:]) {
		return nil, fmt.Errorf("decode block %s: %w", c, ErrHashMismatch)
	}
	if e, err := shareEntry(c, data); e != nil || err != nil {
		if err != nil {
			return nil, fmt.Errorf("decode block %s: %w", c, err)
		}
		return e, nil
	}
	e, err := decodeEntry(data)
	if err != nil {
		return nil, fmt.Errorf("decode block %s: %w", c, err)
	}
	e.cid = internCID(c)
	return e, nil
}

// DecodeEntry decodes an entry from its encoding and computes its CID. It
// performs the same checks as DecodeBlock except the CID comparison.
func DecodeEntry(data []byte) (*Entry, error) {
	if entryIntern.Size() != 0 {
		c := blockCID(data)
		if e := sharedEntry(c, data); e != nil {
			return e, nil
		}
		if e, err := shareEntry(c, data); e != nil || err != nil {
			if err != nil {
				return nil, fmt.Errorf("decode entry: %w", err)
			}
			return e, nil
		}
	}
	e, err := decodeEntry(data)
	if err != nil {
		return nil, fmt.Errorf("decode entry: %w", err)
	}
	e.cid = blockCID(data)
	return e, nil
}

type decoder struct {
	b   []byte
	off int
}

func (d *decoder) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, d.off, fmt.Sprintf(format, args...))
}

// head reads a canonical (shortest-form, definite-length) CBOR head.
func (d *decoder) head() (major byte, n uint64, err error) {
	if d.off >= len(d.b) {
		return 0, 0, d.fail("unexpected end")
	}
	ib := d.b[d.off]
	major, ai := ib>>5, ib&0x1f
	d.off++
	var size int
	switch {
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	default:
		return 0, 0, d.fail("indefinite length or reserved additional info %d", ai)
	}
	if len(d.b)-d.off < size {
		return 0, 0, d.fail("unexpected end")
	}
	p := d.b[d.off : d.off+size]
	d.off += size
	var minimum uint64
	switch size {
	case 1:
		n, minimum = uint64(p[0]), 24
	case 2:
		n, minimum = uint64(binary.BigEndian.Uint16(p)), 0x100
	case 4:
		n, minimum = uint64(binary.BigEndian.Uint32(p)), 0x10000
	default:
		n, minimum = binary.BigEndian.Uint64(p), 0x100000000
	}
	if n < minimum {
		return 0, 0, d.fail("non-canonical integer encoding")
	}
	return major, n, nil
}

func (d *decoder) key(k []byte, name string) error {
	if !bytes.HasPrefix(d.b[d.off:], k) {
		return d.fail("expected field %q (fields must be exactly n, p, r, s, t, v, w, id in this order)", name)
	}
	d.off += len(k)
	return nil
}

func (d *decoder) bytes(name string) ([]byte, error) {
	major, n, err := d.head()
	if err != nil {
		return nil, err
	}
	if major != majBytes {
		return nil, d.fail("field %q: want byte string, got major type %d", name, major)
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, d.fail("field %q: length %d past the end", name, n)
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

func (d *decoder) uint(name string) (uint64, error) {
	major, n, err := d.head()
	if err != nil {
		return 0, err
	}
	if major != majUint {
		return 0, d.fail("field %q: want unsigned integer, got major type %d", name, major)
	}
	return n, nil
}

// linkHead is a link's fixed encoding before the 36 CID bytes: tag 42, byte
// string of 37, multibase identity prefix 0x00.
var linkHead = []byte{0xd8, tagCID, 0x58, cidLen + 1, 0x00}

func (d *decoder) links(name string) ([]cid.Cid, error) {
	major, n, err := d.head()
	if err != nil {
		return nil, err
	}
	if major != majArray {
		return nil, d.fail("field %q: want array, got major type %d", name, major)
	}
	// Each link takes 41 bytes: bound n before allocating.
	if n > uint64(len(d.b)-d.off)/41 {
		return nil, d.fail("field %q: %d links past the end", name, n)
	}
	links := make([]cid.Cid, 0, n)
	var prev []byte
	for i := range int(n) {
		if !bytes.HasPrefix(d.b[d.off:], linkHead) {
			return nil, d.fail("field %q[%d]: want a CID link (tag 42, 37-byte string, prefix 0x00)", name, i)
		}
		d.off += len(linkHead)
		raw := d.b[d.off : d.off+cidLen]
		if !bytes.HasPrefix(raw, cidPrefix[:]) {
			return nil, d.fail("field %q[%d]: not a CIDv1 dag-cbor sha2-256 link", name, i)
		}
		if prev != nil && bytes.Compare(prev, raw) >= 0 {
			return nil, d.fail("field %q: links not sorted or duplicated", name)
		}
		prev = raw
		c, err := castLink(raw)
		if err != nil {
			return nil, d.fail("field %q[%d]: %v", name, i, err)
		}
		links = append(links, c)
		d.off += cidLen
	}
	return links, nil
}

// decodeEntry decodes the exact schema; the byte slices in the result alias
// data, which the caller must not modify afterwards.
func decodeEntry(data []byte) (*Entry, error) {
	d := &decoder{b: data}
	if len(data) == 0 || data[0] != majMap<<5|8 {
		return nil, d.fail("want a map of exactly 8 fields")
	}
	d.off = 1
	e := &Entry{raw: data}
	var err error
	if err = d.key(keyNext, "n"); err != nil {
		return nil, err
	}
	if e.Next, err = d.links("n"); err != nil {
		return nil, err
	}
	if err = d.key(keyPayload, "p"); err != nil {
		return nil, err
	}
	if e.Payload, err = d.bytes("p"); err != nil {
		return nil, err
	}
	if err = d.key(keyRefs, "r"); err != nil {
		return nil, err
	}
	if e.Refs, err = d.links("r"); err != nil {
		return nil, err
	}
	if err = d.key(keySig, "s"); err != nil {
		return nil, err
	}
	if e.Sig, err = d.bytes("s"); err != nil {
		return nil, err
	}
	if err = d.key(keyTime, "t"); err != nil {
		return nil, err
	}
	if e.Time, err = d.uint("t"); err != nil {
		return nil, err
	}
	if err = d.key(keyVersion, "v"); err != nil {
		return nil, err
	}
	v, err := d.uint("v")
	if err != nil {
		return nil, err
	}
	if v != Version {
		return nil, d.fail("version %d, want %d", v, Version)
	}
	if err = d.key(keyWriter, "w"); err != nil {
		return nil, err
	}
	w, err := d.bytes("w")
	if err != nil {
		return nil, err
	}
	e.Writer = ed25519.PublicKey(w)
	if err = d.key(keyID, "id"); err != nil {
		return nil, err
	}
	id, err := d.bytes("id")
	if err != nil {
		return nil, err
	}
	e.ID = string(id)
	if d.off != len(data) {
		return nil, d.fail("%d trailing bytes", len(data)-d.off)
	}
	if err := checkFields(e); err != nil {
		return nil, err
	}
	return e, nil
}
