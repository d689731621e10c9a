package ipfs

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/sdk/plugintest"
)

// TestBootstrapAddressOnPluginProtocol: a bootstrap address on a plugin
// transport's protocol is accepted by Configure (it was "unknown protocol"
// until Start registered the protocol).
func TestBootstrapAddressOnPluginProtocol(t *testing.T) {
	// A protocol name no other test registers: only this Configure can.
	_, diags := parseConfig(map[string]any{
		"transports": map[string]any{"x-bootstrap-only": []any{}},
		"bootstrap":  []any{"/x-bootstrap-only/host:9000/p2p/12D3KooWH85nXhuS7z8M93JxRYj2L7h53KqH6aZr1Y1iXnnwEaG1"},
	})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %+v", diags)
	}
}

// TestBootstrapOverPluginTransport: a node whose only way out is a plugin
// transport reaches its bootstrap peer over it once the transport is
// attached, with or without redialling.
func TestBootstrapOverPluginTransport(t *testing.T) {
	for _, redial := range []string{"1m", "0s"} {
		t.Run("redial "+redial, func(t *testing.T) {
			dir := plugintest.SocketDir(t)
			a := startAttached(t, unixTransport("x-test-unix"), filepath.Join(dir, "a.sock"))
			if len(a.Addrs()) != 1 {
				t.Fatalf("a's addresses: %v", a.Addrs())
			}
			b := startNetwork(t, map[string]any{
				"listen":             []any{},
				"pubsub_validation":  PubsubValidationNone,
				"transports":         map[string]any{"x-test-unix": []any{filepath.Join(dir, "b.sock")}},
				"bootstrap":          []any{a.Addrs()[0]},
				"redial_max_backoff": redial,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := b.AttachTransport(ctx, "pipe", unixTransport("x-test-unix")); err != nil {
				t.Fatal(err)
			}
			aID, err := peer.Decode(a.PeerID())
			if err != nil {
				t.Fatal(err)
			}
			for b.Host().Network().Connectedness(aID) != network.Connected {
				select {
				case <-ctx.Done():
					t.Fatal("b never reached its bootstrap peer over the plugin transport")
				case <-time.After(10 * time.Millisecond):
				}
			}
			onlyOverProtocol(t, b, a, "x-test-unix")
		})
	}
}
