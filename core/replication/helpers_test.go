package replication_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// testSecret is the group secret every test replica shares.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

const testLogID = "test/messages"

// peerNode is one replica under test: its network, log and replicator.
type peerNode struct {
	name string
	net  sdk.Network
	log  *log.Log
	rep  *replication.Replicator
	key  ed25519.PrivateKey
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// startPeer opens a log over net's blocks and replicates it.
func startPeer(t testing.TB, name string, net sdk.Network, key ed25519.PrivateKey, access log.AccessController, opts ...replication.Option) *peerNode {
	t.Helper()
	ctx := context.Background()
	r, err := replication.New(net, opts...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := log.Open(ctx, testLogID, r.BlockStore(), log.NewMemKV(), log.NewKeySigner(key), access)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = l.Close() })
	if _, err := r.Add(testSecret, "messages", l); err != nil {
		t.Fatal(err)
	}
	return &peerNode{name: name, net: net, log: l, rep: r, key: key}
}

// simCluster starts n simnet replicas (named a, b, c, ...) whose writers
// are all allowed, connected to each other.
func simCluster(t testing.TB, n int, netOpts []simnet.Option, opts ...replication.Option) (*simnet.Network, []*peerNode) {
	t.Helper()
	sn := simnet.New(netOpts...)
	t.Cleanup(func() { _ = sn.Close() })
	keys := make([]ed25519.PrivateKey, n)
	pubs := make([]ed25519.PublicKey, n)
	for i := range keys {
		keys[i] = newKey(t)
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
	}
	access := log.AllowWriters(pubs...)
	peers := make([]*peerNode, n)
	for i := range peers {
		name := string(rune('a' + i))
		node, err := sn.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = startPeer(t, name, node, keys[i], access, opts...)
	}
	sn.ConnectAll()
	return sn, peers
}

// fastOpts are replication options for tests: a short anti-entropy period.
func fastOpts(extra ...replication.Option) []replication.Option {
	return append([]replication.Option{
		replication.WithAntiEntropyInterval(50 * time.Millisecond),
		replication.WithFetchTimeout(2 * time.Second),
		replication.WithRequestTimeout(2 * time.Second),
	}, extra...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising on time
	}
}

// converged reports whether every log has want entries and the same heads.
func converged(peers []*peerNode, want int) bool {
	for _, p := range peers {
		if p.log.Len() != want {
			return false
		}
	}
	h0 := peers[0].log.Heads()
	for _, p := range peers[1:] {
		if !slices.EqualFunc(h0, p.log.Heads(), cid.Cid.Equals) {
			return false
		}
	}
	return true
}

func lens(peers []*peerNode) func() string {
	return func() string {
		s := "convergence:"
		for _, p := range peers {
			st := p.rep.Status()
			var ls replication.LogStatus
			if len(st.Logs) > 0 {
				ls = st.Logs[0]
			}
			s += fmt.Sprintf(" %s=%d entries (%d heads, %d missing, queued %d, fetching %v, added %d, last sync %v ago)",
				p.name, p.log.Len(), len(p.log.Heads()), len(ls.Missing), ls.Queued, ls.Fetching, ls.Added, time.Since(ls.LastSync).Round(time.Millisecond))
		}
		return s
	}
}

// order returns the log's entries' CIDs in total order.
func order(t testing.TB, l *log.Log) []cid.Cid {
	t.Helper()
	var out []cid.Cid
	for e, err := range l.Entries(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.CID())
	}
	return out
}

func requireSameOrder(t testing.TB, peers []*peerNode) {
	t.Helper()
	want := order(t, peers[0].log)
	for _, p := range peers[1:] {
		if got := order(t, p.log); !slices.EqualFunc(want, got, cid.Cid.Equals) {
			t.Fatalf("%s's order differs from %s's", p.name, peers[0].name)
		}
	}
}

func appendN(t testing.TB, p *peerNode, n int, prefix string) {
	t.Helper()
	for i := range n {
		if _, err := p.log.Append(context.Background(), fmt.Appendf(nil, "%s-%d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// cidOf returns the CID of an entry block's bytes.
func cidOf(data []byte) cid.Cid {
	m, _ := mh.Sum(data, mh.SHA2_256, -1)
	return cid.NewCidV1(cid.DagCBOR, m)
}

func putRaw(t testing.TB, n sdk.Network, data []byte) {
	t.Helper()
	if err := n.PutBlocks(context.Background(), []sdk.Block{{CID: cidOf(data).Bytes(), Data: data}}); err != nil {
		t.Fatal(err)
	}
}

// testKeys returns the topic keys of testSecret.
func testKeys(t testing.TB) *replication.TopicKeys {
	t.Helper()
	k, err := replication.DeriveTopicKeys(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// proveTo makes node prove to peer that it holds testSecret (as a member
// would), so that peer exchanges heads and entries with it.
func proveTo(t testing.TB, node *simnet.Node, peer string) {
	t.Helper()
	ok, err := replication.Prove(context.Background(), node, node.PeerID(), peer, []*replication.TopicKeys{testKeys(t)})
	if err != nil {
		t.Fatalf("%s proves to %s: %v", node.PeerID(), peer, err)
	}
	if !ok[0] {
		t.Fatalf("%s proved to %s, which does not hold the secret", node.PeerID(), peer)
	}
}

// proveToAll makes node prove to every other node of sn that replicates.
func proveToAll(t testing.TB, sn *simnet.Network, node *simnet.Node) {
	t.Helper()
	peers, err := node.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if sn.Node(p.ID).Subscribed(testKeys(t).Topic) {
			proveTo(t, node, p.ID)
		}
	}
}
