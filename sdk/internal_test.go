package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

func TestErrorsCrossTheBoundary(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"not found", fmt.Errorf("get k: %w", ErrNotFound), ErrNotFound},
		{"canceled", fmt.Errorf("put: %w", context.Canceled), context.Canceled},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded},
		{"invalid argument", fmt.Errorf("empty key: %w", ErrInvalidArgument), ErrInvalidArgument},
		{"lifecycle", fmt.Errorf("not started: %w", ErrLifecycle), ErrLifecycle},
		{"kind not served", ErrKindNotServed, ErrKindNotServed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fromStatus("op", toStatus(tc.err))
			if !errors.Is(got, tc.want) {
				t.Fatalf("after the boundary %v does not match %v", got, tc.want)
			}
			if !strings.Contains(got.Error(), tc.err.Error()) || !strings.HasPrefix(got.Error(), "op: ") {
				t.Fatalf("message %q lost the plugin's text %q or the op", got, tc.err)
			}
		})
	}
	t.Run("other errors match no sentinel", func(t *testing.T) {
		got := fromStatus("op", toStatus(errors.New("disk on fire")))
		for _, s := range []error{ErrNotFound, context.Canceled, ErrInvalidArgument, ErrPluginUnavailable} {
			if errors.Is(got, s) {
				t.Fatalf("%v matches %v", got, s)
			}
		}
	})
	if fromStatus("op", nil) != nil || toStatus(nil) != nil {
		t.Fatal("nil error does not stay nil")
	}
}

func TestParseReattach(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"unix", `{"protocol":"grpc","protocol_version":1,"pid":42,"network":"unix","address":"/tmp/plugin.sock"}`, ""},
		{"tcp loopback", `{"protocol":"grpc","protocol_version":1,"pid":42,"network":"tcp","address":"127.0.0.1:4000"}`, ""},
		{"tcp elsewhere", `{"protocol":"grpc","protocol_version":1,"pid":42,"network":"tcp","address":"192.0.2.1:4000"}`, "loopback"},
		{"netrpc", `{"protocol":"netrpc","protocol_version":1,"pid":42,"network":"unix","address":"/x"}`, "only"},
		{"version 2", `{"protocol":"grpc","protocol_version":2,"pid":42,"network":"unix","address":"/x"}`, "protocol version"},
		{"no pid", `{"protocol":"grpc","protocol_version":1,"network":"unix","address":"/x"}`, "pid"},
		{"udp", `{"protocol":"grpc","protocol_version":1,"pid":1,"network":"udp","address":"127.0.0.1:1"}`, "network"},
		{"not json", `SKEIN`, "parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := ParseReattach(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if rc.Pid != 42 || rc.ProtocolVersion != ProtocolVersion || !rc.Test {
					t.Fatalf("reattach config = %+v", rc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseReattach(f *testing.F) {
	f.Add(`{"protocol":"grpc","protocol_version":1,"pid":42,"network":"unix","address":"/tmp/p.sock"}`)
	f.Add(`{"protocol":"grpc","protocol_version":1,"pid":1,"network":"tcp","address":"[::1]:1"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		rc, err := ParseReattach(s)
		if err == nil && (rc == nil || rc.Addr == nil || rc.Pid <= 0) {
			t.Fatalf("accepted %q as %+v", s, rc)
		}
	})
}

func TestDescriptionChecks(t *testing.T) {
	store := &fakeStore{}
	cases := []struct {
		name    string
		d       Description
		wantErr string
	}{
		{"fine", Description{ID: "x", Kinds: []Kind{KindStore}}, ""},
		{"unimplemented kind", Description{ID: "x", Kinds: []Kind{KindTransport}}, "does not implement"},
		{"unknown kind", Description{ID: "x", Kinds: []Kind{"teleport"}}, "unknown kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := completeDescription(store, tc.d)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// fakeStore is just enough Plugin+Store for description checks.
type fakeStore struct{ Store }

func (*fakeStore) Describe(context.Context) (Description, error)                   { return Description{}, nil }
func (*fakeStore) Configure(context.Context, map[string]any) ([]Diagnostic, error) { return nil, nil }
func (*fakeStore) Start(context.Context) error                                     { return nil }
func (*fakeStore) Stop(context.Context) error                                      { return nil }

// nopTransport hands out net.Pipe connections for data-plane tests.
type nopTransport struct{}

func (nopTransport) Protocol() string { return "x-nop" }
func (nopTransport) Listen(context.Context, string) (Listener, error) {
	return nil, errors.New("no listen")
}
func (nopTransport) Dial(context.Context, string) (net.Conn, error) {
	a, _ := net.Pipe()
	return a, nil
}

func TestDataPlaneRequiresTheToken(t *testing.T) {
	s := newTransportServer(nopTransport{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.close()
	resp, err := s.Dial(context.Background(), &wirev1.DialRequest{DataPlane: wirev1.DataPlane_DATA_PLANE_STREAM})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), resp.GetToken()...)
	bad[0] ^= 1
	cases := []struct {
		name  string
		id    uint64
		token []byte
	}{
		{"wrong token", resp.GetConnId(), bad},
		{"short token", resp.GetConnId(), resp.GetToken()[:8]},
		{"unknown conn", resp.GetConnId() + 1, resp.GetToken()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.claim(tc.id, tc.token); err == nil {
				t.Fatal("claim succeeded")
			}
		})
	}
	if _, err := s.claim(resp.GetConnId(), resp.GetToken()); err != nil {
		t.Fatalf("claim with the right token: %v", err)
	}
	if _, err := s.claim(resp.GetConnId(), resp.GetToken()); err == nil {
		t.Fatal("a connection was claimed twice")
	}
	if _, err := s.Dial(context.Background(), &wirev1.DialRequest{DataPlane: wirev1.DataPlane_DATA_PLANE_UNSPECIFIED}); err == nil {
		t.Fatal("dial without a data plane succeeded")
	}
}

func FuzzSocketHeader(f *testing.F) {
	f.Add(make([]byte, socketHeaderSize))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x01short"))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		s := newTransportServer(nopTransport{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		defer s.close()
		resp, err := s.Dial(context.Background(), &wirev1.DialRequest{DataPlane: wirev1.DataPlane_DATA_PLANE_STREAM})
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr) < 8 {
			return
		}
		id := uint64(hdr[0])<<56 | uint64(hdr[1])<<48 | uint64(hdr[2])<<40 | uint64(hdr[3])<<32 |
			uint64(hdr[4])<<24 | uint64(hdr[5])<<16 | uint64(hdr[6])<<8 | uint64(hdr[7])
		_, err = s.claim(id, hdr[8:])
		if err == nil && string(hdr[8:]) != string(resp.GetToken()) {
			t.Fatalf("claimed conn %d with a forged token", id)
		}
	})
}

// xorTransport dials TCP and wraps the connection in a type that embeds
// *net.TCPConn and changes every byte in Read and Write (as an obfuscating
// transport would).
type xorTransport struct {
	nopTransport
	addr string
}

type xorConn struct{ *net.TCPConn }

func (c xorConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	for i := range p[:n] {
		p[i] ^= 0x5a
	}
	return n, err
}

func (c xorConn) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i := range p {
		q[i] = p[i] ^ 0x5a
	}
	return c.TCPConn.Write(q)
}

func (x xorTransport) Dial(ctx context.Context, _ string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", x.addr)
	if err != nil {
		return nil, err
	}
	return xorConn{c.(*net.TCPConn)}, nil
}

// TestRelayUsesTheConnectionsReadAndWrite: a transport connection of a
// wrapper type around *net.TCPConn is relayed through its own Read and
// Write, both ways (not handed over as a descriptor, not copied past it).
func TestRelayUsesTheConnectionsReadAndWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv(plugin.EnvUnixSocketDir, t.TempDir())
	s := newTransportServer(xorTransport{addr: ln.Addr().String()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.Dial(ctx, &wirev1.DialRequest{DataPlane: wirev1.DataPlane_DATA_PLANE_SOCKET})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	host, err := attachSocket(ctx, resp)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if _, ok := host.(*net.TCPConn); ok {
		t.Fatal("the wrapped connection's descriptor was handed over: its Read and Write would be skipped")
	}
	xor := func(s string) string {
		b := []byte(s)
		for i := range b {
			b[i] ^= 0x5a
		}
		return string(b)
	}
	_ = remote.SetDeadline(time.Now().Add(10 * time.Second))
	_ = host.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := host.Write([]byte("from the host")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("from the host"))
	if _, err := io.ReadFull(remote, got); err != nil || string(got) != xor("from the host") {
		t.Fatalf("the remote end read %q, %v: want the bytes through the wrapper's Write", got, err)
	}
	if _, err := remote.Write([]byte(xor("from the remote"))); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len("from the remote"))
	if _, err := io.ReadFull(host, got); err != nil || string(got) != "from the remote" {
		t.Fatalf("the host read %q, %v: want the bytes through the wrapper's Read", got, err)
	}
}
