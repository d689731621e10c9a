package ipfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// unixTransport is the reference transport over unix stream sockets: an
// address is a socket path.
func unixTransport(proto string) plugintest.UnixTransport {
	return plugintest.UnixTransport{Proto: proto}
}

var (
	pipeBinOnce sync.Once
	pipeBin     string
	pipeBinErr  error
)

// transportPipeBinary builds examples/transport-pipe as its own binary,
// once per test process, as its own test does.
func transportPipeBinary(t testing.TB) string {
	t.Helper()
	pipeBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skein-pipe-bin-")
		if err != nil {
			pipeBinErr = err
			return
		}
		pipeBin = filepath.Join(dir, "transport-pipe")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "build", "-o", pipeBin, "../../examples/transport-pipe")
		if out, err := cmd.CombinedOutput(); err != nil {
			pipeBinErr = fmt.Errorf("build transport-pipe: %v\n%s", err, out)
		}
	})
	if pipeBinErr != nil {
		t.Fatal(pipeBinErr)
	}
	return pipeBin
}

// startAttached starts a network with no TCP/QUIC listen address and tr
// attached, listening on the socket listen.
func startAttached(t testing.TB, tr sdk.Transport, listen string) *Network {
	t.Helper()
	n := startNetwork(t, map[string]any{
		"listen":            []any{},
		"pubsub_validation": PubsubValidationNone,
		"transports":        map[string]any{tr.Protocol(): []any{listen}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.AttachTransport(ctx, "pipe", tr); err != nil {
		t.Fatalf("attach transport: %v", err)
	}
	return n
}

// transportCases are the ways a transport reaches the (linked-in) network.
func transportCases(t *testing.T) []struct {
	name string
	open func(t testing.TB) sdk.Transport
} {
	return []struct {
		name string
		open func(t testing.TB) sdk.Transport
	}{
		{"linked unix transport", func(testing.TB) sdk.Transport { return unixTransport("x-test-unix") }},
		{"transport-pipe out of process, socket plane", func(t testing.TB) sdk.Transport {
			rp := plugintest.StartBinary(t, transportPipeBinary(t), plugintest.WithDataPlane(sdk.DataPlaneSocket))
			tr, ok := rp.Transport()
			if !ok {
				t.Fatal("transport-pipe serves no transport")
			}
			return tr
		}},
		{"transport-pipe out of process, stream plane", func(t testing.TB) sdk.Transport {
			rp := plugintest.StartBinary(t, transportPipeBinary(t), plugintest.WithDataPlane(sdk.DataPlaneStream))
			tr, ok := rp.Transport()
			if !ok {
				t.Fatal("transport-pipe serves no transport")
			}
			return tr
		}},
	}
}

// onlyOverProtocol fails unless every connection between a and b runs
// over the transport protocol proto.
func onlyOverProtocol(t testing.TB, a, b *Network, proto string) {
	t.Helper()
	code := ma.ProtocolWithName(proto).Code
	pb, err := peer.Decode(b.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	conns := a.Host().Network().ConnsToPeer(pb)
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	for _, c := range conns {
		for _, m := range []ma.Multiaddr{c.RemoteMultiaddr(), c.LocalMultiaddr()} {
			if len(m) == 0 || m[0].Code() != code {
				t.Fatalf("connection runs over %s, want /%s", m, proto)
			}
		}
		if st := c.ConnState(); st.Security != "/noise" || st.StreamMultiplexer != "/yamux/1.0.0" {
			t.Fatalf("connection state %+v: want noise and yamux", st)
		}
	}
}

func TestHostsConnectOnlyThroughAttachedTransport(t *testing.T) {
	for _, tc := range transportCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			dir := plugintest.SocketDir(t)
			trA, trB := tc.open(t), tc.open(t)
			a := startAttached(t, trA, filepath.Join(dir, "a.sock"))
			b := startAttached(t, trB, filepath.Join(dir, "b.sock"))
			for _, addr := range b.Addrs() {
				if strings.Contains(addr, "/tcp/") || strings.Contains(addr, "/udp/") {
					t.Fatalf("b listens on %s: want only the attached transport", addr)
				}
			}
			if len(b.Addrs()) != 1 || !strings.HasPrefix(b.Addrs()[0], "/"+trB.Protocol()+"/") {
				t.Fatalf("b's addresses = %v, want one /%s address", b.Addrs(), trB.Protocol())
			}
			connect(t, a, b)
			onlyOverProtocol(t, a, b, trA.Protocol())

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// Pubsub over the transport.
			pubsubRoundTrip(ctx, t, a, b, "skein/test/attached", "over the pipe")
			// A block by bitswap over the transport.
			blk := rawBlock(t, []byte("a block that crosses the attached transport"))
			if err := a.PutBlocks(ctx, []sdk.Block{blk}); err != nil {
				t.Fatal(err)
			}
			var got []sdk.Block
			for bl, err := range b.GetBlocks(ctx, [][]byte{blk.CID}) {
				if err != nil {
					t.Fatalf("get block: %v", err)
				}
				got = append(got, bl)
			}
			if len(got) != 1 || !bytes.Equal(got[0].Data, blk.Data) {
				t.Fatalf("got %d blocks", len(got))
			}
			onlyOverProtocol(t, b, a, trB.Protocol())
		})
	}
}

// TestGarbagePeerIsRefusedByUpgrader connects to a host's transport socket
// and writes garbage instead of a Noise handshake: the host drops the
// connection, admits no peer and goes on serving honest peers.
func TestGarbagePeerIsRefusedByUpgrader(t *testing.T) {
	cases := []struct {
		name    string
		garbage func() []byte
	}{
		{"random bytes", func() []byte { b := make([]byte, 4096); _, _ = rand.Read(b); return b }},
		{"multistream header then junk", func() []byte { return append([]byte("\x13/multistream/1.0.0\n"), bytes.Repeat([]byte{0xff}, 512)...) }},
		{"oversized length prefix", func() []byte { return []byte{0xff, 0xff, 0xff, 0xff, 0x0f} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := plugintest.SocketDir(t)
			tr := unixTransport("x-test-unix")
			bSock := filepath.Join(dir, "b.sock")
			b := startAttached(t, tr, bSock)
			c, err := net.Dial("unix", bSock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.garbage()); err != nil {
				t.Fatal(err)
			}
			// The host must hang up: read until EOF or error, bounded.
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("host kept the garbage connection open")
			}
			if n := len(b.Host().Network().Peers()); n != 0 {
				t.Fatalf("host admitted %d peers", n)
			}
			// An honest peer still gets through.
			a := startAttached(t, tr, filepath.Join(dir, "a.sock"))
			connect(t, a, b)
			onlyOverProtocol(t, a, b, tr.Protocol())
		})
	}
}

func TestAttachTransportRefusals(t *testing.T) {
	dir := plugintest.SocketDir(t)
	n := startNetwork(t, map[string]any{
		"listen":     []any{},
		"transports": map[string]any{"x-test-unix": []any{filepath.Join(dir, "n.sock")}},
	})
	ctx := context.Background()
	cases := []struct {
		name    string
		attach  func() error
		wantErr error
	}{
		{"protocol not in config", func() error { return n.AttachTransport(ctx, "other", unixTransport("x-unlisted")) }, ErrTransportNotConfigured},
		{"no name", func() error { return n.AttachTransport(ctx, "", unixTransport("x-test-unix")) }, sdk.ErrInvalidArgument},
		{"protocol attached from another plugin", func() error {
			if err := n.AttachTransport(ctx, "first", unixTransport("x-test-unix")); err != nil {
				return fmt.Errorf("first attach failed: %v", err)
			}
			return n.AttachTransport(ctx, "second", unixTransport("x-test-unix"))
		}, errAny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.attach()
			if err == nil {
				t.Fatal("attach succeeded")
			}
			if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "first attach failed") {
				t.Fatal(err)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestReattachReplacesListener attaches the same name twice (as after a
// restart of the transport plugin): the host listens once, on the new
// transport, and peers still connect.
func TestReattachReplacesListener(t *testing.T) {
	dir := plugintest.SocketDir(t)
	tr := unixTransport("x-test-unix")
	b := startAttached(t, tr, filepath.Join(dir, "b.sock"))
	if err := b.AttachTransport(context.Background(), "pipe", tr); err != nil {
		t.Fatalf("attach again: %v", err)
	}
	if addrs := b.Host().Network().ListenAddresses(); len(addrs) != 1 {
		t.Fatalf("listen addresses after re-attach = %v, want one", addrs)
	}
	a := startAttached(t, tr, filepath.Join(dir, "a.sock"))
	connect(t, a, b)
	if err := b.DetachTransport(context.Background(), "pipe"); err != nil {
		t.Fatal(err)
	}
	if addrs := b.Host().Network().ListenAddresses(); len(addrs) != 0 {
		t.Fatalf("listen addresses after detach = %v, want none", addrs)
	}
}

func TestTransportsConfigDiagnostics(t *testing.T) {
	cases := []struct {
		name    string
		value   any
		wantKey string // "" means no diagnostic
	}{
		{"valid", map[string]any{"x-pipe": []any{"/run/a.sock"}}, ""},
		{"dial only", map[string]any{"x-pipe": []any{}}, ""},
		{"not a map", []any{"x-pipe"}, "transports"},
		{"bad name", map[string]any{"X_Pipe": []any{}}, "transports.X_Pipe"},
		{"standard protocol name", map[string]any{"tcp": []any{}}, "transports.tcp"},
		{"empty address", map[string]any{"x-pipe": []any{""}}, "transports.x-pipe[0]"},
		{"address not a string", map[string]any{"x-pipe": []any{3}}, "transports.x-pipe[0]"},
		{"addresses not a list", map[string]any{"x-pipe": "/run/a.sock"}, "transports.x-pipe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			diags, err := New().Configure(context.Background(), map[string]any{"transports": tc.value})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantKey == "" {
				if len(diags) != 0 {
					t.Fatalf("diagnostics = %+v, want none", diags)
				}
				return
			}
			if len(diags) != 1 || diags[0].Key != tc.wantKey || diags[0].Severity != sdk.SeverityError {
				t.Fatalf("diagnostics = %+v, want one error on %q", diags, tc.wantKey)
			}
		})
	}
}
