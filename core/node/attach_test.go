package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiformats/go-multihash"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

func init() {
	pluginhost.Register(ipfs.ID, func() sdk.Plugin { return ipfs.New() })
	pluginhost.Register(unixTransportID, func() sdk.Plugin {
		return plugintest.UnixTransport{Proto: "x-node-test-unix", ID: unixTransportID}
	})
	pluginhost.Register(rendezvousID, func() sdk.Plugin { return &rendezvousPlugin{r: sharedRendezvous} })
}

// ---- a transport plugin over unix sockets, linked in ----

const unixTransportID = "transport.test-unix"

// ---- an in-memory rendezvous shared by every node of the test process ----

const rendezvousID = "discovery.test-rendezvous"

type rendezvous struct {
	mu    sync.Mutex
	peers map[string]map[string]sdk.PeerInfo // namespace -> id -> info
	subs  map[string][]*rendezvousSub
}

type rendezvousSub struct {
	ctx context.Context
	ch  chan sdk.PeerInfo
}

var sharedRendezvous = &rendezvous{peers: map[string]map[string]sdk.PeerInfo{}, subs: map[string][]*rendezvousSub{}}

type rendezvousPlugin struct{ r *rendezvous }

var _ sdk.Discovery = (*rendezvousPlugin)(nil)

func (*rendezvousPlugin) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: rendezvousID, Kinds: []sdk.Kind{sdk.KindDiscovery}, Version: "0.0.1"}, nil
}
func (*rendezvousPlugin) Configure(context.Context, map[string]any) ([]sdk.Diagnostic, error) {
	return nil, nil
}
func (*rendezvousPlugin) Start(context.Context) error { return nil }
func (*rendezvousPlugin) Stop(context.Context) error  { return nil }

func (p *rendezvousPlugin) Advertise(ctx context.Context, ns string, self sdk.PeerInfo) error {
	r := p.r
	r.mu.Lock()
	if r.peers[ns] == nil {
		r.peers[ns] = map[string]sdk.PeerInfo{}
	}
	r.peers[ns][self.ID] = self
	subs := append([]*rendezvousSub(nil), r.subs[ns]...)
	r.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- self:
		case <-s.ctx.Done():
		}
	}
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		delete(r.peers[ns], self.ID)
		r.mu.Unlock()
	})
	return nil
}

func (p *rendezvousPlugin) FindPeers(ctx context.Context, ns string) (<-chan sdk.PeerInfo, error) {
	r := p.r
	s := &rendezvousSub{ctx: ctx, ch: make(chan sdk.PeerInfo, 64)}
	r.mu.Lock()
	for _, pi := range r.peers[ns] {
		s.ch <- pi
	}
	r.subs[ns] = append(r.subs[ns], s)
	r.mu.Unlock()
	out := make(chan sdk.PeerInfo)
	go func() {
		defer close(out)
		defer func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			for i, x := range r.subs[ns] {
				if x == s {
					r.subs[ns] = append(r.subs[ns][:i], r.subs[ns][i+1:]...)
					break
				}
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case pi := <-s.ch:
				select {
				case out <- pi:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// ---- helpers ----

var (
	binOnce sync.Map // package path -> *builtBinary
)

type builtBinary struct {
	once      sync.Once
	path, sum string
	err       error
}

// buildBinary builds a main package of this module once per test process
// and returns its path and sha256, as a plugin author would ship it.
func buildBinary(t testing.TB, pkg string) (string, string) {
	t.Helper()
	v, _ := binOnce.LoadOrStore(pkg, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "skein-node-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "build", "-o", b.path, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", pkg, err, out)
			return
		}
		b.sum, b.err = pluginhost.FileSHA256(b.path)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path, b.sum
}

// nodeNetwork returns the node's network plugin's sdk.Network.
func nodeNetwork(t testing.TB, n *Node) sdk.Network {
	t.Helper()
	p, err := n.Plugin("network")
	if err != nil {
		t.Fatal(err)
	}
	nw, err := p.Network()
	if err != nil {
		t.Fatal(err)
	}
	return nw
}

// peerAddrs returns the remote multiaddrs of a's connections to peer id.
func peerAddrs(ctx context.Context, a sdk.Network, id string) []string {
	peers, err := a.Peers(ctx)
	if err != nil {
		return nil
	}
	for _, p := range peers {
		if p.ID == id {
			return p.Addrs
		}
	}
	return nil
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond): // polling a condition, not synchronising on time
		}
	}
}

type nodeShape struct {
	name string
	// yaml returns the plugins section for a node listening on sock.
	yaml  func(t testing.TB, sock string) string
	proto string
}

func networkConfig(proto, sock string) string {
	return `
    config:
      listen: []
      dht_mode: "off"
      relay: false
      pubsub_validation: none
      transports:
        ` + proto + `: ["` + sock + `"]
`
}

var nodeShapes = []nodeShape{
	{
		name:  "all linked in",
		proto: "x-node-test-unix",
		yaml: func(t testing.TB, sock string) string {
			return `
  network:
    id: network.ipfs
    mode: linked` + networkConfig("x-node-test-unix", sock) + `
  pipe:
    id: transport.test-unix
    mode: linked
`
		},
	},
	{
		name:  "network and transport out of process",
		proto: "x-unix-pipe",
		yaml: func(t testing.TB, sock string) string {
			ipfsBin, ipfsSum := buildBinary(t, "github.com/skein-p2p/skein/plugins/ipfs/cmd/skein-ipfs")
			pipeBin, pipeSum := buildBinary(t, "github.com/skein-p2p/skein/examples/transport-pipe")
			return `
  network:
    id: network.ipfs
    path: ` + ipfsBin + `
    sha256: ` + ipfsSum + networkConfig("x-unix-pipe", sock) + `
  pipe:
    id: transport.pipe
    path: ` + pipeBin + `
    sha256: ` + pipeSum + `
`
		},
	},
}

// startShapedNode starts a node of shape listening on sock, with the
// shared rendezvous discovery.
func startShapedNode(t testing.TB, shape nodeShape, sock string) *Node {
	t.Helper()
	yaml := "node:\n  data_dir: data\nplugins:\n  store:\n    enabled: false\n  rendezvous:\n    id: " + rendezvousID + "\n    mode: linked\n" + shape.yaml(t, sock)
	cfg, _ := loadConfig(t, yaml)
	// Warnings and errors only: a failing test still shows what went wrong.
	n, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n
}

func rawTestBlock(t testing.TB, data []byte) sdk.Block {
	t.Helper()
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Block{CID: cid.NewCidV1(cid.Raw, mh).Bytes(), Data: data}
}

// TestNodesFindAndReachEachOtherOverAttachedTransport starts two nodes
// whose network has no TCP/QUIC address, only the attached transport; the
// rendezvous discovery finds each for the other, the nodes dial, and
// pubsub and bitswap work over the transport.
func TestNodesFindAndReachEachOtherOverAttachedTransport(t *testing.T) {
	for _, shape := range nodeShapes {
		t.Run(shape.name, func(t *testing.T) {
			dir := plugintest.SocketDir(t)
			a := startShapedNode(t, shape, filepath.Join(dir, "a.sock"))
			b := startShapedNode(t, shape, filepath.Join(dir, "b.sock"))
			nwA, nwB := nodeNetwork(t, a), nodeNetwork(t, b)
			for _, addr := range nwB.Addrs() {
				if !strings.HasPrefix(addr, "/"+shape.proto+"/") {
					t.Fatalf("b's address %s: want only /%s addresses", addr, shape.proto)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dctx, stopDiscovery := context.WithCancel(ctx)
			var wg sync.WaitGroup
			ns := "test/" + t.Name()
			for _, n := range []*Node{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := n.RunDiscovery(dctx, ns); err != nil {
						t.Errorf("run discovery: %v", err)
					}
				}()
			}
			defer func() { stopDiscovery(); wg.Wait() }()

			waitUntil(t, ctx, "a and b connected", func() bool { return len(peerAddrs(ctx, nwA, nwB.PeerID())) > 0 })
			for _, m := range peerAddrs(ctx, nwA, nwB.PeerID()) {
				if !strings.HasPrefix(m, "/"+shape.proto+"/") {
					t.Fatalf("a reaches b over %s, want /%s", m, shape.proto)
				}
			}

			// Pubsub: publish distinct messages until one arrives (the
			// subscription reaches a shortly after the connection).
			const topic = "skein/test/node-attached"
			msgs, err := nwB.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for i := 0; got == ""; i++ {
				if err := nwA.Publish(ctx, topic, fmt.Appendf(nil, "hello %d", i)); err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-msgs:
					got = string(m.Data)
				case <-time.After(100 * time.Millisecond): // retry the publish; not a synchronisation
				case <-ctx.Done():
					t.Fatal("no pubsub message arrived")
				}
			}
			if !strings.HasPrefix(got, "hello ") {
				t.Fatalf("got message %q", got)
			}

			blk := rawTestBlock(t, []byte("a block across the attached transport, "+shape.name))
			if err := nwA.PutBlocks(ctx, []sdk.Block{blk}); err != nil {
				t.Fatal(err)
			}
			n := 0
			for bl, err := range nwB.GetBlocks(ctx, [][]byte{blk.CID}) {
				if err != nil {
					t.Fatalf("get block: %v", err)
				}
				if !bytes.Equal(bl.Data, blk.Data) {
					t.Fatal("block bytes differ")
				}
				n++
			}
			if n != 1 {
				t.Fatalf("got %d blocks, want 1", n)
			}
		})
	}
}

// TestTransportStaysAttachedAcrossRestarts kills the transport plugin
// process, then the network plugin process, of an out-of-process node:
// after each restart the node attaches the transport again and a new peer
// reaches it over the transport.
func TestTransportStaysAttachedAcrossRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five out-of-process nodes")
	}
	shape := nodeShapes[1]
	dir := plugintest.SocketDir(t)
	b := startShapedNode(t, shape, filepath.Join(dir, "b.sock"))
	nwB := nodeNetwork(t, b)
	cases := []struct {
		name   string
		plugin string
	}{
		{"transport plugin killed", "pipe"},
		{"network plugin killed", "network"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := b.Plugin(tc.plugin)
			if err != nil {
				t.Fatal(err)
			}
			restarts := p.Restarts()
			if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			waitUntil(t, ctx, "plugin restarted", func() bool {
				return p.Restarts() > restarts && p.State() == pluginhost.StateRunning
			})
			c := startShapedNode(t, shape, filepath.Join(dir, fmt.Sprintf("c%d.sock", i)))
			nwC := nodeNetwork(t, c)
			var lastErr error
			waitUntil(t, ctx, "a new peer reaches b over the transport", func() bool {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				defer ccancel()
				lastErr = nwC.Connect(cctx, sdk.PeerInfo{ID: nwB.PeerID(), Addrs: nwB.Addrs()})
				return lastErr == nil
			})
			for _, m := range peerAddrs(ctx, nwC, nwB.PeerID()) {
				if !strings.HasPrefix(m, "/x-unix-pipe/") {
					t.Fatalf("c reaches b over %s", m)
				}
			}
		})
	}
}

// TestLinkedTransportIsNotRelayedToNetworkProcess: a network plugin out of
// process cannot take a linked-in transport (its bytes would have to pass
// through the node); the node refuses to start, naming the cause.
func TestLinkedTransportIsNotRelayedToNetworkProcess(t *testing.T) {
	ipfsBin, ipfsSum := buildBinary(t, "github.com/skein-p2p/skein/plugins/ipfs/cmd/skein-ipfs")
	dir := plugintest.SocketDir(t)
	yaml := "node:\n  data_dir: data\nplugins:\n  store:\n    enabled: false\n" + `
  network:
    id: network.ipfs
    path: ` + ipfsBin + `
    sha256: ` + ipfsSum + networkConfig("x-node-test-unix", filepath.Join(dir, "n.sock")) + `
  pipe:
    id: transport.test-unix
    mode: linked
`
	cfg, _ := loadConfig(t, yaml)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	err = n.Start(ctx)
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if !errors.Is(err, sdk.ErrNoTransportEndpoint) {
		t.Fatalf("start = %v, want sdk.ErrNoTransportEndpoint", err)
	}
}
