package group

import (
	"encoding/binary"
	"fmt"
)

// wireWriter builds the binary encodings of tokens, metadata payloads and
// envelopes: fixed-width fields as raw bytes, integers as unsigned varints
// (LEB128, as encoding/binary), variable-length fields as uvarint length ||
// bytes. docs/protocol.md gives every layout.
type wireWriter struct{ b []byte }

func (w *wireWriter) byte1(v byte)     { w.b = append(w.b, v) }
func (w *wireWriter) raw(p []byte)     { w.b = append(w.b, p...) }
func (w *wireWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) bytes(p []byte)   { w.uvarint(uint64(len(p))); w.b = append(w.b, p...) }
func (w *wireWriter) uint64be(v uint64) {
	w.b = binary.BigEndian.AppendUint64(w.b, v)
}

// wireReader decodes what wireWriter wrote. The first failure sticks: later
// calls return zero values and err keeps the first reason, which names the
// field, so a decoder reads straight through and checks err once.
type wireReader struct {
	b    []byte
	off  int
	what string // what is being decoded, for error messages
	err  error
}

func (r *wireReader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: field %s at byte %d: %s", r.what, field, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *wireReader) byte1(field string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(field, "truncated")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *wireReader) fixed(field string, dst []byte) {
	if r.err != nil {
		return
	}
	if len(r.b)-r.off < len(dst) {
		r.fail(field, "truncated: %d bytes left, want %d", len(r.b)-r.off, len(dst))
		return
	}
	copy(dst, r.b[r.off:])
	r.off += len(dst)
}

func (r *wireReader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(field, "bad or truncated varint")
		return 0
	}
	// Reject non-minimal encodings so every value has one encoding.
	if n != len(binary.AppendUvarint(nil, v)) {
		r.fail(field, "non-minimal varint")
		return 0
	}
	r.off += n
	return v
}

// count reads a uvarint element count and checks it against max.
func (r *wireReader) count(field string, max int) int {
	v := r.uvarint(field)
	if r.err == nil && v > uint64(max) {
		r.fail(field, "count %d exceeds limit %d", v, max)
		return 0
	}
	return int(v)
}

// bytes reads a length-prefixed byte string of at most max bytes. The result
// is a copy.
func (r *wireReader) bytes(field string, max int) []byte {
	n := r.count(field, max)
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail(field, "truncated: %d bytes left, want %d", len(r.b)-r.off, n)
		return nil
	}
	out := append([]byte(nil), r.b[r.off:r.off+n]...)
	r.off += n
	return out
}

func (r *wireReader) uint64be(field string) uint64 {
	var b [8]byte
	r.fixed(field, b[:])
	return binary.BigEndian.Uint64(b[:])
}

// end fails unless every byte was consumed.
func (r *wireReader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("end", "%d trailing bytes", len(r.b)-r.off)
	}
}
