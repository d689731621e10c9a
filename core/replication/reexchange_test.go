package replication_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// replicationGoroutines counts the goroutines whose stack passes through
// a function of this package whose name contains fn.
func replicationGoroutines(t testing.TB, fn string) int {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, stack := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(stack, "core/replication.(*Replicator)."+fn) {
			continue
		}
		var count int
		if _, err := fmt.Sscanf(stack, "%d @", &count); err == nil {
			n += count
		}
	}
	return n
}

// TestPeerConnectsLeaveNoWaitingGoroutines: the exchanges due again after
// peers connect wait in one goroutine per replicator, however many peers
// connect, not in one goroutine per peer and connect.
func TestPeerConnectsLeaveNoWaitingGoroutines(t *testing.T) {
	const peers = 40
	sn := simnet.New(simnet.WithPubsub(simnet.PubsubFlood))
	t.Cleanup(func() { _ = sn.Close() })
	// Re-exchanges due in an hour: every connect stays due for the whole
	// test, so a goroutine per connect would still be waiting below.
	opts := []replication.Option{replication.WithAntiEntropyInterval(time.Hour), replication.WithReexchange(time.Hour)}
	keys := make([]ed25519.PrivateKey, peers+1)
	pubs := make([]ed25519.PublicKey, len(keys))
	for i := range keys {
		keys[i] = newKey(t)
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
	}
	var hub *peerNode
	reps := make([]*replication.Replicator, 0, len(keys))
	for i := range keys {
		nd, err := sn.AddNode(fmt.Sprintf("p%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		p := startPeer(t, nd.PeerID(), nd, keys[i], log.AllowWriters(pubs...), opts...)
		if i == 0 {
			hub = p
		}
		reps = append(reps, p.rep)
	}
	sn.ConnectAll() // every replicator sees every other connect
	if _, err := hub.log.Append(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Every connect scheduled (each replicator has every other peer due).
	waitFor(t, 30*time.Second, func() string { return "every connect to be scheduled" }, func() bool {
		for _, r := range reps {
			if replication.ReexchangesDue(r) != peers {
				return false
			}
		}
		return true
	})
	// A goroutine may still be passing through exchangeLater (scheduling
	// the last connect, or a replicator of an earlier test stopping): the
	// count must fall to none, while a goroutine waiting per connect would
	// keep it at peers*(peers+1) for an hour.
	waitFor(t, 10*time.Second, func() string {
		return fmt.Sprintf("%d goroutines in exchangeLater after %d peers connected, want none", replicationGoroutines(t, "exchangeLater"), peers)
	}, func() bool { return replicationGoroutines(t, "exchangeLater") == 0 })
	if got, want := replicationGoroutines(t, "reexchangeLoop"), peers+1; got != want {
		t.Errorf("%d reexchange loops, want one per replicator (%d)", got, want)
	}
}
