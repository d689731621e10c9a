package messenger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

const waitLimit = 30 * time.Second

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

type testNode struct {
	m    *messenger.Messenger
	net  *simnet.Node
	ks   *crypto.Keystore
	st   sdk.Store
	edit func(*messenger.Config)
}

func newTestNode(tb testing.TB, sn *simnet.Network, name string) *testNode {
	tb.Helper()
	return newTestNodeWith(tb, sn, name, nil)
}

// newTestNodeWith is newTestNode with the messenger's config adjusted by
// edit (nil: as is).
func newTestNodeWith(tb testing.TB, sn *simnet.Network, name string, edit func(*messenger.Config)) *testNode {
	tb.Helper()
	nd, err := sn.AddNode(name)
	if err != nil {
		tb.Fatal(err)
	}
	ks, err := crypto.OpenKeystore(filepath.Join(tb.TempDir(), "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ks.Close() })
	n := &testNode{net: nd, ks: ks, st: memstore.New(), edit: edit}
	n.start(tb)
	return n
}

// start opens the node's messenger over its network, keystore and store.
func (n *testNode) start(tb testing.TB) {
	tb.Helper()
	// simnet delivers every pubsub message straight from its publisher
	// (no relays), which is what a network validating every message
	// guarantees: a peer handing over junk is its author.
	cfg := messenger.Config{Keystore: n.ks, Store: n.st, Network: n.net,
		Replication: []replication.Option{replication.WithPubsubValidated(true), replication.WithAntiEntropyInterval(300 * time.Millisecond)}}
	if os.Getenv("SKEIN_TEST_LOG") != "" { // debugging aid: the messengers' logs on stderr
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.net.PeerID())
	}
	if n.edit != nil {
		n.edit(&cfg)
	}
	m, err := messenger.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	n.m = m
}

func bodies(tb testing.TB, n *testNode, ref string) []string {
	tb.Helper()
	msgs, err := n.m.Messages(context.Background(), ref, messenger.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func cids(tb testing.TB, n *testNode, ref string) []cid.Cid {
	tb.Helper()
	msgs, err := n.m.Messages(context.Background(), ref, messenger.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]cid.Cid, len(msgs))
	for i, m := range msgs {
		out[i] = m.CID
	}
	return out
}

// threeMembers returns three messengers in one group (by id hex).
func threeMembers(tb testing.TB) (*simnet.Network, []*testNode, string) {
	tb.Helper()
	ctx := context.Background()
	sn := simnet.New()
	tb.Cleanup(func() { sn.Close() })
	nodes := []*testNode{newTestNode(tb, sn, "a"), newTestNode(tb, sn, "b"), newTestNode(tb, sn, "c")}
	sn.ConnectAll()
	gi, err := nodes[0].m.CreateGroup(ctx, "friends")
	if err != nil {
		tb.Fatal(err)
	}
	ref := gi.ID.String()
	for i, n := range nodes[1:] {
		inv, err := nodes[0].m.Invite(ctx, "friends")
		if err != nil {
			tb.Fatal(err)
		}
		jctx, cancel := context.WithTimeout(ctx, waitLimit)
		got, err := n.m.JoinGroup(jctx, inv.Token(), fmt.Sprintf("joined-%d", i))
		cancel()
		if err != nil {
			tb.Fatalf("join %d: %v", i, err)
		}
		if got.ID != gi.ID {
			tb.Fatalf("joined group %s, want %s", got.ID.Fingerprint(), gi.ID.Fingerprint())
		}
	}
	for i, n := range nodes {
		waitFor(tb, fmt.Sprintf("node %d sees 3 members", i), func() bool {
			ms, err := n.m.Members(ref)
			return err == nil && len(ms) == 3
		})
	}
	return sn, nodes, ref
}

func TestThreeMessengersAllDirectionsSameOrder(t *testing.T) {
	ctx := context.Background()
	_, nodes, ref := threeMembers(t)
	const perNode = 5
	var want []string
	for round := range perNode {
		for i, n := range nodes {
			body := fmt.Sprintf("msg %d from %d", round, i)
			want = append(want, body)
			if _, err := n.m.Send(ctx, ref, []byte(body)); err != nil {
				t.Fatalf("send %q: %v", body, err)
			}
		}
	}
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d has every message", i), func() bool { return len(bodies(t, n, ref)) == len(want) })
	}
	slices.Sort(want)
	got := bodies(t, nodes[0], ref)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(sorted, want) {
		t.Fatalf("node 0 messages = %q, want %q", sorted, want)
	}
	order := cids(t, nodes[0], ref)
	for i, n := range nodes[1:] {
		if o := cids(t, n, ref); !slices.Equal(o, order) {
			t.Errorf("node %d order differs from node 0:\n%v\n%v", i+1, o, order)
		}
	}
	// Every node's sync status names its peers and misses nothing.
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d in sync", i), func() bool {
			st, err := n.m.SyncStatus(ctx, ref)
			return err == nil && len(st) == 1 && st[0].InSync() && len(st[0].Peers) > 0
		})
	}
}

func TestSubscribeDeliversRemoteMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, nodes, ref := threeMembers(t)
	ch, _, err := nodes[2].m.Subscribe(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].m.Send(ctx, ref, []byte("live")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if string(m.Body) != "live" {
			t.Fatalf("got %q", m.Body)
		}
	case <-time.After(waitLimit):
		t.Fatal("no message on the subscription")
	}
}

// A node that subscribes to the group's topic and fetches every block it
// hears of holds the ciphertext, but no byte of it shows a message, and it
// cannot open the group.
func TestNonMemberReadsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn, nodes, ref := threeMembers(t)
	eve, err := sn.AddNode("eve")
	if err != nil {
		t.Fatal(err)
	}
	sn.ConnectAll()
	gi, err := nodes[0].m.Resolve(ref)
	if err != nil {
		t.Fatal(err)
	}
	// Eve learned the topic (a former member, say): it still reads nothing.
	topic, err := nodes[0].m.Topic(ref)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := eve.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("the eagle lands at dawn")
	if _, err := nodes[1].m.Send(ctx, ref, secret); err != nil {
		t.Fatal(err)
	}
	// What eve hears on the topic is sealed under a key from the
	// replication key, which the topic does not give.
	sawSealed := 0
	waitFor(t, "sealed announcements", func() bool {
		select {
		case m := <-sub:
			if _, err := replication.DecodeAnnouncement(m.Data); err == nil {
				t.Fatalf("eve read an announcement: %x", m.Data)
			}
			if err := replication.ValidateAnnouncement(m.Data); err != nil {
				t.Fatalf("not a sealed announcement: %v", err)
			}
			sawSealed++
		default:
		}
		return sawSealed >= 2
	})
	// Eve holds the heads anyway (as a CID holder might).
	var heads []cid.Cid
	sts, err := nodes[0].m.SyncStatus(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		for _, l := range st.Logs {
			heads = append(heads, l.LocalHeads...)
		}
	}
	// Eve fetches every entry reachable from the heads.
	seen := map[cid.Cid]bool{}
	todo := slices.Clone(heads)
	var fetched int
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		fctx, fcancel := context.WithTimeout(ctx, waitLimit)
		for b, err := range eve.GetBlocks(fctx, [][]byte{c.Bytes()}) {
			if err != nil {
				t.Fatalf("fetch %s: %v", c, err)
			}
			fetched++
			if bytes.Contains(b.Data, secret) {
				t.Fatalf("block %s holds the plaintext", c)
			}
			e, err := log.DecodeBlock(c, b.Data)
			if err != nil {
				t.Fatalf("decode %s: %v", c, err)
			}
			todo = append(todo, e.Next...)
		}
		fcancel()
	}
	if fetched < 2 {
		t.Fatalf("eve fetched %d blocks; the test proves nothing", fetched)
	}
	// A messenger on eve's network without an invitation holds nothing.
	ks, err := crypto.OpenKeystore(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	em, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: memstore.New(), Network: eve})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if _, _, err := em.Subscribe(ctx, ref); !errors.Is(err, messenger.ErrGroupNotFound) {
		t.Fatalf("subscribe without membership: err = %v, want ErrGroupNotFound", err)
	}
	// Nor can it open the group with the group id and its own keys.
	if _, err := group.Open(ctx, em.Identity(), ks, gi.ID, group.Storage{Blocks: log.NewMemBlockStore(), KV: log.NewMemKV()}); err == nil {
		t.Fatal("a non-member opened the group")
	}
}

func TestRestartKeepsGroupsAndMessages(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	a := newTestNode(t, sn, "a")
	gi, err := a.m.CreateGroup(ctx, "notes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.Send(ctx, "notes", []byte("remember")); err != nil {
		t.Fatal(err)
	}
	if err := a.m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := messenger.New(ctx, messenger.Config{Keystore: a.ks, Store: a.st, Network: a.net})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if !m2.Identity().AccountKey().Equal(a.m.Identity().AccountKey()) {
		t.Fatal("account changed across restart")
	}
	got, err := m2.Resolve(gi.ID.String()[:8])
	if err != nil || got.Name != "notes" {
		t.Fatalf("resolve after restart: %+v, %v", got, err)
	}
	msgs, err := m2.Messages(ctx, "notes", messenger.ListOptions{})
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "remember" {
		t.Fatalf("messages after restart: %v, %v", msgs, err)
	}
}

func TestResolveAndArguments(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	a := newTestNode(t, sn, "a")
	g1, err := a.m.CreateGroup(ctx, "dup")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.CreateGroup(ctx, "dup"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"ambiguous name", func() error { _, err := a.m.Resolve("dup"); return err }, messenger.ErrAmbiguous},
		{"unknown", func() error { _, err := a.m.Resolve("nope"); return err }, messenger.ErrGroupNotFound},
		{"empty ref", func() error { _, err := a.m.Resolve(""); return err }, messenger.ErrGroupNotFound},
		{"id ok", func() error { _, err := a.m.Resolve(g1.ID.String()); return err }, nil},
		{"empty body", func() error { _, err := a.m.Send(ctx, g1.ID.String(), nil); return err }, messenger.ErrInvalidArgument},
		{"bad token", func() error { _, err := a.m.JoinGroup(ctx, "skein1-garbage", ""); return err }, messenger.ErrInvalidArgument},
		{"bad name", func() error { _, err := a.m.CreateGroup(ctx, "bad\nname"); return err }, messenger.ErrInvalidArgument},
		{"unknown member", func() error { _, err := a.m.RemoveMember(ctx, g1.ID.String(), "ffff"); return err }, messenger.ErrMemberNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
