package ble

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Framing of one connection over a packet link.
//
// Every packet a link carries is one frame:
//
//	kind (1 byte) | sequence (2 bytes, big-endian) | payload
//
// kind is frameData (payload of 1 byte or more) or frameClose (no
// payload: the sender sends nothing more). The sequence numbers of the
// frames sent on a link count from 0 and wrap at 65536. An L2CAP channel
// delivers frames in order, so the receiver checks them; the GATT
// fallback may reorder notifications, so it puts them back in order with
// a bounded window first (reorderer). A frame that breaks any rule is a
// protocol error and the link is cut.

const (
	frameData  byte = 0x01
	frameClose byte = 0x02
)

// frameHeader is the size of a frame's header.
const frameHeader = 3

// Framing errors. A peer that sends one is cut off.
var (
	ErrFrameShort    = errors.New("ble: frame shorter than its header")
	ErrFrameKind     = errors.New("ble: unknown frame kind")
	ErrFrameTooLarge = errors.New("ble: frame larger than the link's MTU")
	ErrFrameEmpty    = errors.New("ble: data frame without payload")
	ErrFrameClose    = errors.New("ble: close frame with payload")
	ErrFrameSequence = errors.New("ble: frame out of sequence")
)

// frame is one decoded frame; payload aliases the packet.
type frame struct {
	kind    byte
	seq     uint16
	payload []byte
}

// appendFrame appends the encoding of a frame to b.
func appendFrame(b []byte, kind byte, seq uint16, payload []byte) []byte {
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, seq)
	return append(b, payload...)
}

// decodeFrame decodes one packet of at most mtu bytes.
func decodeFrame(p []byte, mtu int) (frame, error) {
	if len(p) > mtu {
		return frame{}, fmt.Errorf("%w: %d bytes, MTU %d", ErrFrameTooLarge, len(p), mtu)
	}
	if len(p) < frameHeader {
		return frame{}, fmt.Errorf("%w: %d bytes", ErrFrameShort, len(p))
	}
	f := frame{kind: p[0], seq: binary.BigEndian.Uint16(p[1:3]), payload: p[frameHeader:]}
	switch f.kind {
	case frameData:
		if len(f.payload) == 0 {
			return frame{}, ErrFrameEmpty
		}
	case frameClose:
		if len(f.payload) != 0 {
			return frame{}, fmt.Errorf("%w: %d bytes", ErrFrameClose, len(f.payload))
		}
	default:
		return frame{}, fmt.Errorf("%w %#x", ErrFrameKind, f.kind)
	}
	return f, nil
}

// sequencer checks that frames come in sequence.
type sequencer struct{ next uint16 }

func (s *sequencer) check(f frame) error {
	if f.seq != s.next {
		return fmt.Errorf("%w: got %d, want %d", ErrFrameSequence, f.seq, s.next)
	}
	s.next++
	return nil
}

// reorderer puts frames that may arrive out of order (GATT notifications)
// back in sequence within a window of frames; a frame outside the window
// or a duplicate is a protocol error. It holds at most window packets.
type reorderer struct {
	next    uint16
	window  int
	pending map[uint16][]byte
}

// ErrReorderWindow is returned for a frame too far ahead of the next
// expected one, or one already received.
var ErrReorderWindow = errors.New("ble: frame outside the reorder window")

func newReorderer(window int) *reorderer {
	return &reorderer{window: window, pending: map[uint16][]byte{}}
}

// push takes one packet (already decoded as f) and returns the packets
// now in sequence, in order.
func (r *reorderer) push(f frame, packet []byte) ([][]byte, error) {
	ahead := int(f.seq - r.next) // wraps: 0..65535
	if ahead >= r.window {
		return nil, fmt.Errorf("%w: sequence %d, expecting %d (window %d)", ErrReorderWindow, f.seq, r.next, r.window)
	}
	if _, dup := r.pending[f.seq]; dup {
		return nil, fmt.Errorf("%w: sequence %d received twice", ErrReorderWindow, f.seq)
	}
	r.pending[f.seq] = packet
	var out [][]byte
	for {
		p, ok := r.pending[r.next]
		if !ok {
			return out, nil
		}
		delete(r.pending, r.next)
		out = append(out, p)
		r.next++
	}
}

// held is how many packets wait for an earlier one.
func (r *reorderer) held() int { return len(r.pending) }
