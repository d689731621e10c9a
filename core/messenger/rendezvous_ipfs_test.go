package messenger_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

// startIPFS starts a network plugin on loopback with cfg added.
func startIPFS(t *testing.T, cfg map[string]any) *ipfs.Network {
	t.Helper()
	n := ipfs.New()
	c := map[string]any{"data_dir": t.TempDir(), "listen": []any{"/ip4/127.0.0.1/tcp/0"}, "relay": false}
	for k, v := range cfg {
		c[k] = v
	}
	if diags, err := n.Configure(context.Background(), c); err != nil || len(diags) > 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

// ipfsMessenger starts a messenger (node number i, for the debug log) over
// n with a short anti-entropy period and opts.
func ipfsMessenger(t *testing.T, i int, n *ipfs.Network, opts ...replication.Option) *messenger.Messenger {
	t.Helper()
	ks, err := crypto.OpenKeystore(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("SKEIN_TEST_LOG") != "" { // debugging aid
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
	}
	// A short anti-entropy period: announcements published before
	// gossipsub's mesh formed are repaired quickly.
	m, err := messenger.New(context.Background(), messenger.Config{Keystore: ks, Store: memstore.New(), Network: n, Logger: logger,
		Replication: append([]replication.Option{replication.WithAntiEntropyInterval(300 * time.Millisecond)}, opts...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Two members who know no address of each other, only a common DHT node
// that is in no group, find each other at their group's rendezvous: the
// joiner finds the inviter, and messages flow both ways. With rendezvous
// off they never meet. The members are DHT clients, so the DHT's own
// lookups never name one to the other.
func TestMembersMeetAtTheRendezvousOverIPFS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the messenger over libp2p")
	}
	tests := []struct {
		name       string
		rendezvous time.Duration
	}{
		{"rendezvous on", time.Minute},
		{"rendezvous off", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dhtNode := startIPFS(t, map[string]any{"dht_mode": "server"})
			boot := []any{dhtNode.Addrs()[0] + "/p2p/" + dhtNode.PeerID()}
			var nets []*ipfs.Network
			var ms []*messenger.Messenger
			for i := range 2 {
				n := startIPFS(t, map[string]any{"dht_mode": "client", "bootstrap": boot})
				nets = append(nets, n)
				ms = append(ms, ipfsMessenger(t, i, n, replication.WithRendezvousInterval(tt.rendezvous)))
			}
			a, b := ms[0], ms[1]
			gi, err := a.CreateGroup(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			inv, err := a.Invite(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			limit := time.Minute
			if tt.rendezvous == 0 {
				limit = 5 * time.Second // only to show that they do not meet
			}
			jctx, cancel := context.WithTimeout(ctx, limit)
			defer cancel()
			_, err = b.JoinGroup(jctx, inv.Token(), "g")
			if tt.rendezvous == 0 {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("join without rendezvous: err = %v, want a timeout", err)
				}
				if st, err := a.SyncStatus(ctx, "g"); err != nil || !st[0].Rendezvous.Last.IsZero() {
					t.Fatalf("a's rendezvous status with rendezvous off = %+v, %v", st, err)
				}
				if ps, _ := nets[1].Peers(ctx); slices.ContainsFunc(ps, func(p sdk.PeerInfo) bool { return p.ID == nets[0].PeerID() }) {
					t.Fatal("the members met without a rendezvous")
				}
				return
			}
			if err != nil {
				t.Fatalf("join through the rendezvous: %v", err)
			}
			// Whichever looked up after the other had provided found it
			// (the joiner, unless its first lookup came before the
			// inviter's record reached the DHT node). A round records its
			// status only when it ends, after its provides, and the join
			// may complete before: as soon as the joiner's lookup has
			// dialled the inviter, or the inviter's first provide reached
			// the DHT node. Wait for both rounds to end.
			waitFor(t, "both members' rendezvous rounds, one finding the other", func() bool {
				var found uint64
				ended := true
				for _, m := range ms {
					st, err := m.SyncStatus(ctx, "g")
					if err != nil {
						t.Fatal(err)
					}
					ended = ended && !st[0].Rendezvous.Last.IsZero()
					found += st[0].Rendezvous.Found
				}
				return ended && found >= 1
			})
			oneEach(t, ms, gi.ID.String())
		})
	}
}
