package ipfs

import (
	"errors"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestProtocolCodeIsDerivedFromTheName(t *testing.T) {
	cases := []struct {
		name string
		want int
	}{
		// sha256("x-collide-a")[0:4] mod 0x100000, over 0x300000.
		{"x-collide-a", 3209111},
		{"x-collide-636975", 3209111},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ProtocolCode(tc.name)
			if got != tc.want {
				t.Fatalf("ProtocolCode(%q) = %#x, want %#x", tc.name, got, tc.want)
			}
			if got < privateCodeBase || got >= privateCodeBase+privateCodeSpan {
				t.Fatalf("code %#x outside the private-use range", got)
			}
		})
	}
}

func TestRegisterTransportProtocol(t *testing.T) {
	cases := []struct {
		name    string
		proto   string
		wantErr error
	}{
		{"new name", "x-reg-test", nil},
		{"same name again is a no-op", "x-reg-test", nil},
		{"derived code already taken", "x-collide-636975", ErrProtocolCollision}, // after x-collide-a
		{"standard protocol name", "tcp", ErrProtocolCollision},
		{"upper case", "X-Pipe", ErrBadProtocolName},
		{"slash", "x/pipe", ErrBadProtocolName},
		{"empty", "", ErrBadProtocolName},
		{"too long", "x" + strings.Repeat("a", 64), ErrBadProtocolName},
	}
	if _, err := RegisterTransportProtocol("x-collide-a"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := RegisterTransportProtocol(tc.proto)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if p.Code != ProtocolCode(tc.proto) || ma.ProtocolWithName(tc.proto).Code != p.Code {
				t.Fatalf("registered %+v, want code %#x", p, ProtocolCode(tc.proto))
			}
			m, err := TransportMultiaddr(p, "/run/skein/pipe.sock")
			if err != nil {
				t.Fatal(err)
			}
			back, err := ma.NewMultiaddr(m.String() + "/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf")
			if err != nil {
				t.Fatalf("parse %s: %v", m, err)
			}
			if v, err := back.ValueForProtocol(p.Code); err != nil || v != "%2Frun%2Fskein%2Fpipe.sock" {
				t.Fatalf("value = %q, %v", v, err)
			}
		})
	}
}

func TestTransportAddrEscaping(t *testing.T) {
	cases := []struct {
		name    string
		in      string // string form
		want    string // raw address
		wantErr bool
	}{
		{"plain", "AA:BB:CC:DD:EE:FF", "AA:BB:CC:DD:EE:FF", false},
		{"path", "%2Ftmp%2Fa.sock", "/tmp/a.sock", false},
		{"escaped percent", "%25", "%", false},
		{"binary", "%00%FF", "\x00\xff", false},
		{"empty", "", "", true},
		{"raw slash", "/tmp", "", true},
		{"lower-case hex", "%2f", "", true},
		{"escaped unreserved", "%41", "", true},
		{"truncated escape", "%2", "", true},
		{"bad hex", "%G0", "", true},
		{"too long", strings.Repeat("a", MaxTransportAddr+1), "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnescapeTransportAddr(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrBadTransportAddr) {
					t.Fatalf("err = %v, want ErrBadTransportAddr", err)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if back := EscapeTransportAddr(got); back != tc.in {
				t.Fatalf("escape(%q) = %q, want %q", got, back, tc.in)
			}
		})
	}
}

// FuzzAddrTranscoder checks that the transcoder of plugin transport
// addresses (fed by multiaddrs from the network) never panics and maps
// strings and bytes one to one.
func FuzzAddrTranscoder(f *testing.F) {
	f.Add("%2Ftmp%2Fa.sock", []byte("/tmp/a.sock"))
	f.Add("AA:BB", []byte{0, 1, 2})
	f.Add("%", []byte{})
	f.Fuzz(func(t *testing.T, s string, b []byte) {
		var tr addrTranscoder
		if raw, err := tr.StringToBytes(s); err == nil {
			back, err := tr.BytesToString(raw)
			if err != nil || back != s {
				t.Fatalf("%q -> %q -> %q, %v", s, raw, back, err)
			}
			if strings.Contains(back, "/") {
				t.Fatalf("string form %q contains a slash", back)
			}
		}
		str, err := tr.BytesToString(b)
		if (err == nil) != (tr.ValidateBytes(b) == nil) {
			t.Fatalf("BytesToString and ValidateBytes disagree on %q", b)
		}
		if err != nil {
			return
		}
		raw, err := tr.StringToBytes(str)
		if err != nil || string(raw) != string(b) {
			t.Fatalf("%q -> %q -> %q, %v", b, str, raw, err)
		}
	})
}
