package ble

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	cases := []struct {
		name    string
		packet  []byte
		mtu     int
		want    frame
		wantErr error
	}{
		{"data", []byte{frameData, 0, 7, 'h', 'i'}, 23, frame{kind: frameData, seq: 7, payload: []byte("hi")}, nil},
		{"close", []byte{frameClose, 1, 0}, 23, frame{kind: frameClose, seq: 256, payload: []byte{}}, nil},
		{"empty", nil, 23, frame{}, ErrFrameShort},
		{"header only data", []byte{frameData, 0, 0}, 23, frame{}, ErrFrameEmpty},
		{"close with payload", []byte{frameClose, 0, 0, 1}, 23, frame{}, ErrFrameClose},
		{"unknown kind", []byte{0x7f, 0, 0, 1}, 23, frame{}, ErrFrameKind},
		{"over mtu", append([]byte{frameData, 0, 0}, make([]byte, 21)...), 23, frame{}, ErrFrameTooLarge},
		{"at mtu", append([]byte{frameData, 0, 0}, make([]byte, 20)...), 23, frame{kind: frameData, payload: make([]byte, 20)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := decodeFrame(tc.packet, tc.mtu)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (f.kind != tc.want.kind || f.seq != tc.want.seq || !bytes.Equal(f.payload, tc.want.payload)) {
				t.Fatalf("frame = %+v, want %+v", f, tc.want)
			}
		})
	}
}

func TestSequencer(t *testing.T) {
	var s sequencer
	s.next = 65535
	for _, seq := range []uint16{65535, 0, 1} {
		if err := s.check(frame{seq: seq}); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	if err := s.check(frame{seq: 3}); !errors.Is(err, ErrFrameSequence) {
		t.Fatalf("skipped frame: err = %v", err)
	}
}

func TestReorderer(t *testing.T) {
	cases := []struct {
		name    string
		start   uint16
		seqs    []uint16
		want    []uint16 // released, in order
		wantErr error
	}{
		{"in order", 0, []uint16{0, 1, 2}, []uint16{0, 1, 2}, nil},
		{"swapped", 0, []uint16{1, 0, 3, 2}, []uint16{0, 1, 2, 3}, nil},
		{"wraps", 65534, []uint16{65535, 65534, 0}, []uint16{65534, 65535, 0}, nil},
		{"duplicate held", 0, []uint16{2, 2}, nil, ErrReorderWindow},
		{"duplicate delivered", 0, []uint16{0, 0}, []uint16{0}, ErrReorderWindow},
		{"beyond window", 0, []uint16{4}, nil, ErrReorderWindow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newReorderer(4)
			r.next = tc.start
			var got []uint16
			var err error
			for _, s := range tc.seqs {
				var out [][]byte
				p := appendFrame(nil, frameData, s, []byte{1})
				f, _ := decodeFrame(p, 100)
				out, err = r.push(f, p)
				if err != nil {
					break
				}
				for _, o := range out {
					f, _ := decodeFrame(o, 100)
					got = append(got, f.seq)
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("released %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("released %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// FuzzFrames: any packets from a peer, through the decoder and the
// reorder window: no panic, held packets within the window, released
// packets in sequence.
func FuzzFrames(f *testing.F) {
	f.Add([]byte{frameData, 0, 0, 'x'}, uint16(0), uint8(3))
	f.Add([]byte{frameClose, 0, 0}, uint16(65535), uint8(0))
	f.Add([]byte{0xff}, uint16(1), uint8(64))
	f.Fuzz(func(t *testing.T, packet []byte, start uint16, splits uint8) {
		if _, err := decodeFrame(packet, 517); err == nil && len(packet) > 517 {
			t.Fatal("frame over the MTU accepted")
		}
		r := newReorderer(reorderWindow)
		r.next = start
		next := start
		// The packet cut in pieces, each taken as a frame of its own.
		for i := 0; i <= int(splits)%8 && len(packet) > 0; i++ {
			n := 1 + (int(splits)*(i+1))%len(packet)
			p := packet[:n]
			packet = packet[n:]
			fr, err := decodeFrame(p, 517)
			if err != nil {
				continue
			}
			out, err := r.push(fr, p)
			if err != nil {
				continue
			}
			for _, o := range out {
				of, err := decodeFrame(o, 517)
				if err != nil || of.seq != next {
					t.Fatalf("released %v (seq %d), want seq %d", o, of.seq, next)
				}
				next++
			}
			if r.held() >= reorderWindow {
				t.Fatalf("holding %d packets, window %d", r.held(), reorderWindow)
			}
		}
	})
}

func TestAdvertisementRoundTrip(t *testing.T) {
	adv := encodeAdvertisement("skein/v1", "12D3KooWExample")
	if len(adv) != MaxAdvertisement {
		t.Fatalf("advertisement of %d bytes, want %d", len(adv), MaxAdvertisement)
	}
	info, err := parseAdvertisement(adv)
	if err != nil {
		t.Fatal(err)
	}
	if info.ns != nsHash("skein/v1") || info.id != idHash("12D3KooWExample") {
		t.Fatalf("parsed %+v", info)
	}
	// Another device's advertisement (a UUID of its own) is not ours.
	other := append([]byte{0x02, 0x01, 0x06, 0x03, 0x03, 0x0d, 0x18}, make([]byte, 0)...)
	if _, err := parseAdvertisement(other); !errors.Is(err, ErrNotSkein) {
		t.Fatalf("heart-rate advertisement: err = %v", err)
	}
}

func TestIdentity(t *testing.T) {
	cases := []struct {
		name    string
		raw     []byte
		wantErr bool
	}{
		{"good", mustIdentity(t, "ns", "sim-1@128", "12D3KooWPeer"), false},
		{"empty", nil, true},
		{"bad version", []byte{9, 0, 0, 0, 'p'}, true},
		{"address overruns", []byte{identityVersion, 0, 0, 200, 'a'}, true},
		{"no peer id", []byte{identityVersion, 0, 0, 1, 'a'}, true},
		{"control byte in id", []byte{identityVersion, 0, 0, 1, 'a', 'p', 0}, true},
		{"slash in address", []byte{identityVersion, 0, 0, 1, '/', 'p'}, true},
		{"too long", append([]byte{identityVersion, 0, 0, 0}, bytes.Repeat([]byte{'p'}, MaxIdentity)...), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := parseIdentity(tc.raw)
			if (err != nil) != tc.wantErr {
				t.Fatalf("identity %+v, err %v; want error %v", id, err, tc.wantErr)
			}
			if err == nil && (id.addr != "sim-1@128" || id.peerID != "12D3KooWPeer" || id.ns != nsHash("ns")) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func mustIdentity(t testing.TB, ns, addr, id string) []byte {
	t.Helper()
	b, err := encodeIdentity(ns, addr, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzAdvertisement: any advertisement heard: no panic, and what is
// accepted re-encodes to the same hashes.
func FuzzAdvertisement(f *testing.F) {
	f.Add(encodeAdvertisement("skein/v1", "peer"))
	f.Add([]byte{0x02, 0x01, 0x06, 0xff})
	f.Add([]byte{0x1f})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseAdvertisement(b)
		if err == nil && len(b) > MaxAdvertisement {
			t.Fatalf("accepted %d bytes", len(b))
		}
		_ = info
	})
}

// FuzzIdentity: any identity read from a device: no panic; what is
// accepted is bounded, printable and encodes back to the same bytes.
func FuzzIdentity(f *testing.F) {
	good, _ := encodeIdentity("ns", "00:AA:01:00:00:23@128", "12D3KooWPeer")
	f.Add(good)
	f.Add([]byte{identityVersion, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseIdentity(b)
		if err != nil {
			return
		}
		if len(id.peerID) > maxPeerID || !printable(id.addr) || !printableID(id.peerID) {
			t.Fatalf("accepted %+v", id)
		}
		again := []byte{identityVersion, id.ns[0], id.ns[1], byte(len(id.addr))}
		again = append(append(again, id.addr...), id.peerID...)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, read %x", again, b)
		}
	})
}
