package replication_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
)

// TestProgressCountsEntries: a replica far behind says about how many
// entries it misses (from the Lamport clock of a missing head), and counts
// the entries and bytes its joins fetched, not the heads.
func TestProgressCountsEntries(t *testing.T) {
	topic, err := replication.Topic(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sn, peers := simCluster(t, 2, nil, fastOpts(replication.WithFetchTimeout(time.Hour))...)
	a, b := peers[0], peers[1]
	appendN(t, a, 5, "shared")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 5) })

	// 200 entries by a that nobody can serve but the head, announced
	// inline: b knows the head's clock, and its join waits for the rest.
	ctx := context.Background()
	private, err := log.Open(ctx, testLogID, log.NewMemBlockStore(), log.NewMemKV(), log.NewKeySigner(a.key), log.AllowWriters(a.key.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer private.Close()
	var head *log.Entry
	for i := range 200 {
		if head, err = private.Append(ctx, fmt.Appendf(nil, "hidden %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	evil := evilPeer(t, sn)
	if err := evil.Publish(ctx, topic, announce(t, topic, []cid.Cid{head.CID()}, [][]byte{head.Bytes()})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() string { return fmt.Sprintf("b's estimate: %+v", b.rep.Status().Logs[0].Progress) }, func() bool {
		st := b.rep.Status().Logs[0]
		// The head's time is 200; b's top is 5 (a's five appends).
		return len(st.Missing) == 1 && st.Progress.MissingEntries == 195
	})

	// Entries fetched are counted one by one, with their bytes.
	before := b.rep.Status().Logs[0].Progress
	appendN(t, a, 30, "after")
	waitFor(t, 10*time.Second, lens(peers[:1]), func() bool { return b.log.Len() == 35 })
	after := b.rep.Status().Logs[0].Progress
	if got := after.Fetched - before.Fetched; got < 30 {
		t.Fatalf("b fetched %d entries for 30 new ones (progress %+v, then %+v)", got, before, after)
	}
	if after.FetchedBytes <= before.FetchedBytes {
		t.Fatalf("fetched bytes did not grow: %+v, then %+v", before, after)
	}
}
