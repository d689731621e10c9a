package ble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

// memGATT is one direction of an in-memory GATT pipe: values go to a
// stream's input after a seeded chance of being lost, repeated or
// overtaken by the next one, as writes without response and
// notifications through BlueZ may be.
type memGATT struct {
	loss, dup, swap float64
	q               chan []byte
	done            chan struct{}

	mu      sync.Mutex
	rng     *rand.Rand
	to      func([]byte)
	cut     bool // drop everything from now on
	lost    int
	dups    int
	swapped int
	sent    int
}

func newMemGATT(seed uint64, loss, dup, swap float64) *memGATT {
	return &memGATT{loss: loss, dup: dup, swap: swap, q: make(chan []byte, 1024), done: make(chan struct{}),
		rng: rand.New(rand.NewPCG(seed, 0x9a77))}
}

func (m *memGATT) send(p []byte) error {
	select {
	case m.q <- append([]byte(nil), p...):
		return nil
	case <-m.done:
		return ErrClosed
	}
}

func (m *memGATT) draw(p float64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return p > 0 && m.rng.Float64() < p
}

func (m *memGATT) run() {
	var held []byte
	for {
		var p []byte
		select {
		case <-m.done:
			return
		case p = <-m.q:
		case <-time.After(time.Millisecond):
			// Nothing behind a held value: let it go.
			if held != nil {
				m.deliver(held)
				held = nil
			}
			continue
		}
		m.mu.Lock()
		m.sent++
		cut := m.cut
		m.mu.Unlock()
		switch {
		case cut:
			continue
		case m.draw(m.loss):
			m.mu.Lock()
			m.lost++
			m.mu.Unlock()
			continue
		case held == nil && m.draw(m.swap):
			held = p // the next one overtakes it
			continue
		}
		m.deliver(p)
		if m.draw(m.dup) {
			m.mu.Lock()
			m.dups++
			m.mu.Unlock()
			m.deliver(p)
		}
		if held != nil {
			m.mu.Lock()
			m.swapped++
			m.mu.Unlock()
			m.deliver(held)
			held = nil
		}
	}
}

func (m *memGATT) counts() (lost, swapped int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost, m.swapped
}

func (m *memGATT) deliver(p []byte) {
	m.mu.Lock()
	to := m.to
	m.mu.Unlock()
	if to != nil {
		to(p)
	}
}

type memPair struct {
	ab, ba *memGATT
	a, b   *gattStream
}

// gattPair opens a stream over an in-memory pipe: a dials, b accepts.
func gattPair(t *testing.T, seed uint64, value int, loss, dup, swap float64) *memPair {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	mp := &memPair{ab: newMemGATT(seed, loss, dup, swap), ba: newMemGATT(seed+1, loss, dup, swap)}
	for _, m := range []*memGATT{mp.ab, mp.ba} {
		go m.run()
		t.Cleanup(func() { close(m.done) })
	}
	mp.a = newGATTStream(0xA1B2C3D4, value, mp.ab.send, log, "a@gatt", "b@130", "b")
	mp.a.rtoMin, mp.a.rto = 20*time.Millisecond, 20*time.Millisecond
	mp.ba.to = mp.a.input
	accepted := make(chan *gattStream, 1)
	var once sync.Once
	mp.ab.mu.Lock()
	mp.ab.to = func(p []byte) {
		seg, err := decodeSegment(p, gattMaxValue)
		if err != nil || seg.kind != segOpen {
			return // before the accept: only the open counts
		}
		once.Do(func() {
			s, psm, err := acceptGATT(seg, gattMaxValue, mp.ba.send, log, "b@130", "a@gatt", "a")
			if err != nil || psm != 130 {
				t.Errorf("accept: psm %d, %v", psm, err)
				return
			}
			s.rtoMin, s.rto = 20*time.Millisecond, 20*time.Millisecond
			mp.ab.mu.Lock()
			mp.ab.to = s.input
			mp.ab.mu.Unlock()
			accepted <- s
		})
	}
	mp.ab.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := dialGATT(ctx, mp.a, 130); err != nil {
		t.Fatalf("open: %v", err)
	}
	select {
	case mp.b = <-accepted:
	case <-ctx.Done():
		t.Fatal("never accepted")
	}
	t.Cleanup(func() { mp.a.finish(); mp.b.finish() })
	return mp
}

// packets are n packets of sizes 1..mtu, numbered.
func testPackets(seed uint64, n, mtu int) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, 1+r.IntN(mtu))
		for j := range p {
			p[j] = byte(i + j*7)
		}
		out[i] = p
	}
	return out
}

func writeAll(s *gattStream, ps [][]byte) error {
	for _, p := range ps {
		if err := s.WritePacket(p, time.Now().Add(20*time.Second)); err != nil {
			return err
		}
	}
	return nil
}

func readAll(s *gattStream, want [][]byte) error {
	for i, w := range want {
		p, err := s.ReadPacket()
		if err != nil {
			return fmt.Errorf("packet %d: %w", i, err)
		}
		if !bytes.Equal(p, w) {
			return fmt.Errorf("packet %d: %d bytes, want %d (out of order or torn)", i, len(p), len(w))
		}
	}
	return nil
}

// TestGATTStream: packets go both ways whole and in order, then each end
// reads io.EOF after the other closed, over pipes that lose, repeat and
// reorder values, at the smallest and largest value sizes.
func TestGATTStream(t *testing.T) {
	cases := []struct {
		name            string
		value           int
		loss, dup, swap float64
	}{
		{"clean 180", 180, 0, 0, 0},
		{"clean 20", 20, 0, 0, 0},
		{"loss 10%", 180, 0.1, 0, 0},
		{"repeats 10%", 180, 0, 0.1, 0},
		{"reorder 30%", 180, 0, 0, 0.3},
		{"all at once, ATT MTU 23", 20, 0.05, 0.05, 0.2},
		{"all at once", 180, 0.1, 0.1, 0.3},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mp := gattPair(t, uint64(100+i), tc.value, tc.loss, tc.dup, tc.swap)
			mtu := mp.a.MTU()
			if want := gattMTU(tc.value); mtu != want || mp.b.MTU() != want {
				t.Fatalf("MTU %d and %d, want %d", mtu, mp.b.MTU(), want)
			}
			ab, ba := testPackets(1, 300, mtu), testPackets(2, 300, mtu)
			errs := make(chan error, 4)
			go func() { errs <- writeAll(mp.a, ab) }()
			go func() { errs <- writeAll(mp.b, ba) }()
			go func() { errs <- readAll(mp.b, ab) }()
			go func() { errs <- readAll(mp.a, ba) }()
			for range 4 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			closed := make(chan error, 1)
			go func() { closed <- mp.a.Close() }()
			if p, err := mp.b.ReadPacket(); !errors.Is(err, io.EOF) {
				t.Fatalf("b read after a's close: %d bytes, %v; want io.EOF", len(p), err)
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			if err := mp.b.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := mp.a.ReadPacket(); !errors.Is(err, ErrClosed) {
				t.Fatalf("a read after its close: %v, want ErrClosed", err)
			}
			lost, swapped := mp.ab.counts()
			if tc.loss > 0 && lost == 0 {
				t.Fatal("nothing lost: the case tests nothing")
			}
			if tc.swap > 0 && swapped == 0 {
				t.Fatal("nothing reordered: the case tests nothing")
			}
		})
	}
}

// TestGATTStreamFlowControl: a reader that stops holds the writer back at
// the receive buffer (the writer's deadline passes), and the bytes held
// stay bounded; once it reads, everything arrives.
func TestGATTStreamFlowControl(t *testing.T) {
	mp := gattPair(t, 7, 180, 0.05, 0, 0.1)
	mtu := mp.a.MTU()
	ps := testPackets(3, 4*gattRecvBuffer/mtu, mtu)
	var sent int
	for _, p := range ps {
		err := mp.a.WritePacket(p, time.Now().Add(300*time.Millisecond))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if sent == len(ps) {
		t.Fatalf("all %d packets (%d bytes) went to a reader that reads nothing", sent, len(ps)*mtu)
	}
	mp.b.mu.Lock()
	held := mp.b.readyBytes + len(mp.b.partial)
	for _, s := range mp.b.ooo {
		held += len(s.payload)
	}
	mp.b.mu.Unlock()
	if held > gattRecvBuffer+gattWindow*gattMaxValue {
		t.Fatalf("receiver holds %d bytes, bound %d", held, gattRecvBuffer+gattWindow*gattMaxValue)
	}
	errs := make(chan error, 2)
	go func() { errs <- writeAll(mp.a, ps[sent:]) }()
	go func() { errs <- readAll(mp.b, ps) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestGATTStreamPeerGone: a peer that acknowledges nothing (out of range,
// BlueZ gone) fails the stream after the retransmissions, for the writer
// and the reader.
func TestGATTStreamPeerGone(t *testing.T) {
	mp := gattPair(t, 9, 180, 0, 0, 0)
	mp.a.mu.Lock()
	mp.a.rtoMax, mp.a.maxRetries = 40*time.Millisecond, 3
	mp.a.mu.Unlock()
	mp.ab.mu.Lock()
	mp.ab.cut = true
	mp.ab.mu.Unlock()
	if err := mp.a.WritePacket([]byte("into the void"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err := mp.a.ReadPacket()
	if !errors.Is(err, ErrGATTNoAck) || !errors.Is(err, ErrLinkLost) {
		t.Fatalf("read: %v, want ErrGATTNoAck and ErrLinkLost", err)
	}
	if err := mp.a.WritePacket([]byte("again"), time.Time{}); !errors.Is(err, ErrGATTNoAck) {
		t.Fatalf("write after: %v, want ErrGATTNoAck", err)
	}
}

// TestGATTStreamBadSegments: a segment that breaks the protocol cuts the
// link (and tells the peer so); one of another link is ignored.
func TestGATTStreamBadSegments(t *testing.T) {
	other := func(s *gattStream) []byte {
		return appendSegment(nil, segment{kind: segEnd, link: s.id + 1, seq: 5, payload: []byte("x")})
	}
	cases := []struct {
		name string
		seg  func(s *gattStream) []byte
		cut  bool
	}{
		{"garbage", func(*gattStream) []byte { return []byte{0xFF, 1, 2} }, true},
		{"unknown kind", func(s *gattStream) []byte { return appendSegment(nil, segment{kind: 0x7F, link: s.id}) }, true},
		{"too far ahead", func(s *gattStream) []byte {
			return appendSegment(nil, segment{kind: segEnd, link: s.id, seq: gattWindow + 3, payload: []byte("x")})
		}, true},
		{"acks what was never sent", func(s *gattStream) []byte {
			return appendSegment(nil, segment{kind: segAck, link: s.id, ack: 40})
		}, true},
		{"packet over the MTU", nil, true},
		{"past the window", nil, true},
		{"window over the bound", func(s *gattStream) []byte {
			return appendSegment(nil, segment{kind: segAck, link: s.id, window: gattWindow + 1})
		}, true},
		{"another link's", other, false},
		{"a repeat", func(s *gattStream) []byte {
			return appendSegment(nil, segment{kind: segEnd, link: s.id, seq: 0xFFFF, payload: []byte("x")})
		}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mp := gattPair(t, uint64(200+i), 30, 0, 0, 0)
			switch {
			case tc.name == "past the window":
				// Whole packets in sequence, none read, ignoring the
				// window the receiver advertises (a hears nothing back:
				// b's acks would be of segments a never sent).
				mp.ba.mu.Lock()
				mp.ba.cut = true
				mp.ba.mu.Unlock()
				for n := range 2 * gattRecvBuffer / 20 {
					mp.b.input(appendSegment(nil, segment{kind: segEnd, link: mp.b.id, seq: uint16(n), payload: make([]byte, 20)}))
				}
			case tc.seg == nil:
				// Segments of 20 bytes of payload, none ending the packet.
				for n := range gattPacketSegments + 1 {
					mp.b.input(appendSegment(nil, segment{kind: segMore, link: mp.b.id, seq: uint16(n), payload: make([]byte, 20)}))
				}
			default:
				mp.b.input(tc.seg(mp.b))
			}
			mp.b.mu.Lock()
			err := mp.b.err
			mp.b.mu.Unlock()
			if tc.cut != (err != nil) {
				t.Fatalf("stream error %v, want cut %v", err, tc.cut)
			}
			if tc.cut {
				if !errors.Is(err, ErrSegment) {
					t.Fatalf("error %v, want ErrSegment", err)
				}
				// The reset reaches the dialler.
				if tc.name == "past the window" {
					return
				}
				if _, err := mp.a.ReadPacket(); !errors.Is(err, ErrLinkLost) {
					t.Fatalf("dialler read: %v, want ErrLinkLost after the reset", err)
				}
				return
			}
			if err := mp.a.WritePacket([]byte("still up"), time.Time{}); err != nil {
				t.Fatal(err)
			}
			if p, err := mp.b.ReadPacket(); err != nil || string(p) != "still up" {
				t.Fatalf("read %q, %v", p, err)
			}
		})
	}
}

// TestGATTStreamRefused: a listener that answers the open with a reset
// refuses the link.
func TestGATTStreamRefused(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var s *gattStream
	s = newGATTStream(42, 180, func(p []byte) error {
		seg, err := decodeSegment(p, gattMaxValue)
		if err == nil && seg.kind == segOpen {
			go s.input(resetSegment(seg.link))
		}
		return nil
	}, log, "a", "b", "b")
	defer s.finish()
	if err := dialGATT(t.Context(), s, 128); !errors.Is(err, ErrGATTRefused) {
		t.Fatalf("dial: %v, want ErrGATTRefused", err)
	}
}

func TestDecodeSegment(t *testing.T) {
	seg := func(s segment) []byte { return appendSegment(nil, s) }
	cases := []struct {
		name string
		p    []byte
		ok   bool
	}{
		{"data", seg(segment{kind: segEnd, link: 1, seq: 2, ack: 3, window: 4, payload: []byte("hi")}), true},
		{"empty end", seg(segment{kind: segEnd}), true},
		{"empty more", seg(segment{kind: segMore}), false},
		{"ack", seg(segment{kind: segAck, window: gattWindow}), true},
		{"ack with payload", seg(segment{kind: segAck, payload: []byte{1}}), false},
		{"open", seg(segment{kind: segOpen, payload: openPayload(180, 128)}), true},
		{"short open", seg(segment{kind: segOpen, payload: []byte{1}}), false},
		{"accept", seg(segment{kind: segAccept, payload: []byte{1, 0, 180}}), true},
		{"short", []byte{segAck, 0, 0}, false},
		{"too long", seg(segment{kind: segEnd, payload: make([]byte, gattMaxValue)}), false},
		{"unknown kind", seg(segment{kind: 0x10}), false},
		{"window too large", seg(segment{kind: segAck, window: gattWindow + 1}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSegment(tc.p, gattMaxValue)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if err == nil && !bytes.Equal(appendSegment(nil, got), tc.p) {
				t.Fatal("round trip differs")
			}
		})
	}
}

// FuzzGATTSegments feeds a stream arbitrary values: it never panics, and
// whatever it accepts keeps its bounds.
func FuzzGATTSegments(f *testing.F) {
	f.Add(appendSegment(nil, segment{kind: segEnd, link: 7, payload: []byte("x")}), appendSegment(nil, segment{kind: segAck, link: 7, window: 3}))
	f.Add(appendSegment(nil, segment{kind: segMore, link: 7, seq: 1, payload: []byte("ab")}), appendSegment(nil, segment{kind: segFin, link: 7}))
	f.Add([]byte{segOpen}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s, _, err := acceptGATT(segment{kind: segOpen, link: 7, payload: openPayload(40, 128)}, 180, func([]byte) error { return nil },
			slog.New(slog.DiscardHandler), "a", "b", "b")
		if err != nil {
			t.Fatal(err)
		}
		defer s.finish()
		for _, p := range [][]byte{a, b, a} {
			s.input(p)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.ooo) > gattWindow || len(s.partial) > gattMTU(s.value) || len(s.unacked) > 0 {
			t.Fatalf("bounds: %d out of order, %d partial, %d unacked", len(s.ooo), len(s.partial), len(s.unacked))
		}
	})
}
