package ipfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/sdk"
)

// The test binary doubles as a bare bitswap client process (see
// TestEntryIsAnOrdinaryIPFSBlock).
const fetchEnv = "SKEIN_TEST_BITSWAP_FETCH"

func TestMain(m *testing.M) {
	if spec := os.Getenv(fetchEnv); spec != "" {
		os.Exit(bareBitswapFetch(spec))
	}
	// Warnings and errors only: a failing test still shows what went wrong.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// bareBitswapFetch is a separate process holding nothing but a libp2p host,
// boxo's bitswap client and a CID: it prints the block's bytes in hex.
func bareBitswapFetch(spec string) int {
	addr, c, _ := strings.Cut(spec, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer h.Close()
	bs := bitswap.New(ctx, bsnet.NewFromIpfsHost(h), nil, blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore())))
	defer bs.Close()
	ma, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	info, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := h.Connect(ctx, *info); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	id, err := cid.Decode(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	blk, err := bs.GetBlock(ctx, id)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(hex.EncodeToString(blk.RawData()))
	return 0
}

func startNetwork(t testing.TB, cfg map[string]any) *Network {
	t.Helper()
	n := New()
	base := map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false}
	for k, v := range cfg {
		base[k] = v
	}
	diags, err := n.Configure(context.Background(), base)
	if err != nil || len(diags) > 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func connect(t testing.TB, a, b *Network) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, sdk.PeerInfo{ID: b.PeerID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func rawBlock(t testing.TB, data []byte) sdk.Block {
	t.Helper()
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Block{CID: cid.NewCidV1(cid.DagCBOR, mh).Bytes(), Data: data}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising on time
	}
}

func TestConfigureDiagnostics(t *testing.T) {
	tests := []struct {
		name    string
		cfg     map[string]any
		wantKey string
	}{
		{"unknown key", map[string]any{"listne": []any{}}, "listne"},
		{"bad listen multiaddr", map[string]any{"listen": []any{"tcp:4001"}}, "listen[0]"},
		{"listen not a list", map[string]any{"listen": 4001}, "listen"},
		{"bootstrap without peer id", map[string]any{"bootstrap": []any{"/ip4/127.0.0.1/tcp/4001"}}, "bootstrap[0]"},
		{"bad dht mode", map[string]any{"dht_mode": "sometimes"}, "dht_mode"},
		{"bad dht scope", map[string]any{"dht_scope": "wan"}, "dht_scope"},
		{"watermarks inverted", map[string]any{"conn_low": 10, "conn_high": 5}, "conn_high"},
		{"mesh too large", map[string]any{"mesh_d": 100}, "mesh_d"},
		{"unknown pubsub validation", map[string]any{"pubsub_validation": "strict"}, "pubsub_validation"},
		{"pubsub validation not a string", map[string]any{"pubsub_validation": true}, "pubsub_validation"},
		{"wrong type", map[string]any{"relay": "yes"}, "relay"},
		{"redial backoff not a duration", map[string]any{"redial_max_backoff": "soon"}, "redial_max_backoff"},
		{"redial backoff without unit", map[string]any{"redial_max_backoff": 60}, "redial_max_backoff"},
		{"redial backoff negative", map[string]any{"redial_max_backoff": "-1s"}, "redial_max_backoff"},
		{"redial backoff below a second", map[string]any{"redial_max_backoff": "100ms"}, "redial_max_backoff"},
		{"redial backoff over a day", map[string]any{"redial_max_backoff": "25h"}, "redial_max_backoff"},
		{"redial backoff wrong type", map[string]any{"redial_max_backoff": true}, "redial_max_backoff"},
		{"redial max peers zero", map[string]any{"redial_max_peers": 0}, "redial_max_peers"},
		{"redial max peers too many", map[string]any{"redial_max_peers": 5000}, "redial_max_peers"},
		{"validate concurrency zero", map[string]any{"validate_concurrency": 0}, "validate_concurrency"},
		{"validate timeout too short", map[string]any{"validate_timeout": "1ms"}, "validate_timeout"},
		{"gossip threshold positive", map[string]any{"score_gossip_threshold": 5}, "score_gossip_threshold"},
		{"publish threshold above gossip", map[string]any{"score_publish_threshold": -10}, "score_publish_threshold"},
		{"graylist threshold above publish", map[string]any{"score_graylist_threshold": -30}, "score_graylist_threshold"},
		{"disconnect threshold above graylist", map[string]any{"score_disconnect_threshold": -50}, "score_disconnect_threshold"},
		{"disconnect threshold below the floor", map[string]any{"score_disconnect_threshold": -5000}, "score_disconnect_threshold"},
		{"threshold not a number", map[string]any{"score_gossip_threshold": "low"}, "score_gossip_threshold"},
		{"threshold not finite", map[string]any{"score_gossip_threshold": "-Inf"}, "score_gossip_threshold"},
		{"block for zero", map[string]any{"score_block_for": "0s"}, "score_block_for"},
		{"half-life not a duration", map[string]any{"score_app_half_life": "a while"}, "score_app_half_life"},
		{"direct memory per peer below a frame", map[string]any{"direct_memory_per_peer": "1MiB"}, "direct_memory_per_peer"},
		{"direct memory below per peer", map[string]any{"direct_memory": "8MiB"}, "direct_memory"},
		{"direct memory not a size", map[string]any{"direct_memory": "lots"}, "direct_memory"},
		{"direct streams zero", map[string]any{"direct_streams": 0}, "direct_streams"},
		{"direct streams per peer over total", map[string]any{"direct_streams": 8, "direct_streams_per_peer": 9}, "direct_streams_per_peer"},
		{"idle timeout over the timeout", map[string]any{"direct_idle_timeout": "1m"}, "direct_idle_timeout"},
		{"direct timeout too long", map[string]any{"direct_timeout": "1h"}, "direct_timeout"},
		{"resource memory below direct memory", map[string]any{"resource_memory": "1MiB"}, "resource_memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := New()
			diags, err := n.Configure(context.Background(), tc.cfg)
			if err != nil {
				t.Fatalf("Configure returned error instead of diagnostics: %v", err)
			}
			found := false
			for _, d := range diags {
				if d.Key == tc.wantKey && d.Severity == sdk.SeverityError {
					found = true
				}
			}
			if !found {
				t.Fatalf("no error diagnostic for key %q; got %+v", tc.wantKey, diags)
			}
		})
	}
	t.Run("redial off: 0 as a string or a number", func(t *testing.T) {
		for _, v := range []any{"0", "0s", 0, 0.0} {
			n := New()
			diags, err := n.Configure(context.Background(), map[string]any{"redial_max_backoff": v})
			if err != nil || len(diags) != 0 {
				t.Fatalf("%v: diags %v err %v", v, diags, err)
			}
			if n.cfg.RedialMaxBackoff != 0 {
				t.Fatalf("%v: redial_max_backoff %v, want 0", v, n.cfg.RedialMaxBackoff)
			}
		}
	})
	t.Run("good config has no diagnostics", func(t *testing.T) {
		n := New()
		diags, err := n.Configure(context.Background(), map[string]any{
			"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "server", "conn_low": 1, "conn_high": 2,
			"redial_max_backoff": "30s", "redial_max_peers": 16,
			"validate_concurrency": 8, "validate_timeout": "500ms",
			"score_gossip_threshold": -10, "score_publish_threshold": "-20.5", "score_graylist_threshold": -40, "score_disconnect_threshold": -80,
			"score_block_for": "1h", "score_app_half_life": "30s",
			"direct_memory": "128MiB", "direct_memory_per_peer": 8 << 20, "direct_streams": 100, "direct_streams_per_peer": 10,
			"direct_idle_timeout": "5s", "direct_timeout": "1m", "resource_memory": "1GiB",
		})
		if err != nil || len(diags) != 0 {
			t.Fatalf("diags %v err %v", diags, err)
		}
		if c := n.cfg; c.Direct.MemoryPerPeer != 8<<20 || c.Direct.Memory != 128<<20 || c.Score.PublishThreshold != -20.5 ||
			c.Score.BlockFor != time.Hour || c.ResourceMemory != 1<<30 || c.ValidateConcurrency != 8 {
			t.Fatalf("config not taken: %+v", c)
		}
	})
}

func TestBlocksMoveByBitswap(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	connect(t, b, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var want []sdk.Block
	for i := range 50 {
		want = append(want, rawBlock(t, []byte(fmt.Sprintf("entry %d", i))))
	}
	if err := a.PutBlocks(ctx, want); err != nil {
		t.Fatal(err)
	}
	var cids [][]byte
	for _, blk := range want {
		cids = append(cids, blk.CID)
	}
	got := map[string][]byte{}
	for blk, err := range b.GetBlocks(ctx, cids) {
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		got[string(blk.CID)] = blk.Data
	}
	for _, blk := range want {
		if !bytes.Equal(got[string(blk.CID)], blk.Data) {
			t.Fatalf("block %x: got %q want %q", blk.CID, got[string(blk.CID)], blk.Data)
		}
	}
	has, err := b.HasBlock(ctx, want[0].CID)
	if err != nil || !has {
		t.Fatalf("fetched block not kept locally: %v %v", has, err)
	}
}

func TestPutRejectsBlockNotMatchingCID(t *testing.T) {
	a := startNetwork(t, nil)
	blk := rawBlock(t, []byte("honest"))
	blk.Data = []byte("tampered")
	err := a.PutBlocks(context.Background(), []sdk.Block{blk})
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatal("a block whose bytes do not hash to its CID was accepted")
	}
	err = a.PutBlocks(context.Background(), []sdk.Block{{CID: []byte("junk"), Data: []byte("x")}})
	if !errors.Is(err, ErrBadCID) {
		t.Fatalf("junk CID: got %v, want ErrBadCID", err)
	}
}

func TestGetMissingBlockFailsAtDeadline(t *testing.T) {
	a := startNetwork(t, nil)
	b := startNetwork(t, nil)
	connect(t, b, a)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	missing := rawBlock(t, []byte("nobody has this"))
	var errs int
	for _, err := range b.GetBlocks(ctx, [][]byte{missing.CID}) {
		if err == nil {
			t.Fatal("got a block nobody has")
		}
		errs++
	}
	if errs != 1 {
		t.Fatalf("want one error for the missing block, got %d", errs)
	}
}

func TestPubsubDeliversUnsignedMessages(t *testing.T) {
	generic := map[string]any{"pubsub_validation": PubsubValidationNone} // raw bytes, not announcements
	a := startNetwork(t, generic)
	b := startNetwork(t, generic)
	connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pubsubRoundTrip(ctx, t, a, b, "skein/test/topic", "heads")
}

// pubsubRoundTrip publishes data on topic from a once b is in a's mesh of
// it, and checks that b receives it from a.
func pubsubRoundTrip(ctx context.Context, t testing.TB, a, b *Network, topic, data string) {
	t.Helper()
	msgs, err := b.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := a.topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b in a's topic mesh", func() bool { return len(ta.ListPeers()) > 0 })
	if err := a.Publish(ctx, topic, []byte(data)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if string(m.Data) != data || m.From != a.PeerID() || m.Topic != topic {
			t.Fatalf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("pubsub message not delivered")
	}
}

func TestNetworkKeyIsPersistentAndPrivate(t *testing.T) {
	dir := t.TempDir()
	n := startNetwork(t, map[string]any{"data_dir": dir})
	first := n.PeerID()
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, "network.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("network.key mode %v, want 0600", st.Mode().Perm())
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.PeerID() != first {
		t.Fatalf("peer id changed across restart: %s -> %s", first, n.PeerID())
	}
	if err := os.Chmod(filepath.Join(dir, "network.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = n.Stop(context.Background())
	if err := n.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable network key was accepted: %v", err)
	}
}

func TestBlocksPersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNetwork(t, map[string]any{"data_dir": dir})
	blk := rawBlock(t, []byte("durable"))
	if err := n.PutBlocks(context.Background(), []sdk.Block{blk}); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	has, err := n.HasBlock(context.Background(), blk.CID)
	if err != nil || !has {
		t.Fatalf("block lost across restart: %v %v", has, err)
	}
}

func TestCallsBeforeStartFailClearly(t *testing.T) {
	n := New()
	if err := n.Publish(context.Background(), "t", nil); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("got %v", err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
}

// An entry is an ordinary IPFS block: a process holding only boxo's bitswap
// client and the CID fetches it from a Skein node.
func TestEntryIsAnOrdinaryIPFSBlock(t *testing.T) {
	n := startNetwork(t, nil)
	blk := rawBlock(t, []byte("an ordinary block"))
	if err := n.PutBlocks(context.Background(), []sdk.Block{blk}); err != nil {
		t.Fatal(err)
	}
	c, err := cid.Cast(blk.CID)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fetchEnv+"="+n.Addrs()[0]+" "+c.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bare bitswap client: %v\n%s", err, stderr.String())
	}
	got, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("bad output %q", out)
	}
	if !bytes.Equal(got, blk.Data) || sha256.Sum256(got) != sha256.Sum256(blk.Data) {
		t.Fatalf("got %q", got)
	}
}

// TestAgentVersion: identify tells peers "skein/<version>", never
// libp2p's default (the main module path and an empty version).
func TestAgentVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"default", nil, DefaultAgentVersion()},
		{"given", []Option{WithAgentVersion("skein/v1.2.3")}, "skein/v1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.opts...)
			diags, err := a.Configure(context.Background(), map[string]any{"listen": []any{"/ip4/127.0.0.1/tcp/0"}, "dht_mode": "off", "relay": false})
			if err != nil || len(diags) > 0 {
				t.Fatal(diags, err)
			}
			if err := a.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Stop(context.Background()) })
			b := startNetwork(t, nil)
			connect(t, b, a)
			var got string
			waitFor(t, "identify to complete", func() bool {
				v, err := b.Host().Peerstore().Get(a.Host().ID(), "AgentVersion")
				got, _ = v.(string)
				return err == nil
			})
			if got != tc.want || !strings.HasPrefix(got, "skein/") || got == "skein/" {
				t.Fatalf("agent version %q, want %q", got, tc.want)
			}
		})
	}
}
