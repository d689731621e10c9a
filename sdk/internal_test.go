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
