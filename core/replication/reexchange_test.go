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
	opts := []replication.Option{replication.WithAntiEntropyInterval(time.Hour)}
	keys := make([]ed25519.PrivateKey, peers+1)
	pubs := make([]ed25519.PublicKey, len(keys))
	for i := range keys {
		keys[i] = newKey(t)
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
	}
	var hub *peerNode
	for i := range keys {
		nd, err := sn.AddNode(fmt.Sprintf("p%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		p := startPeer(t, nd.PeerID(), nd, keys[i], log.AllowWriters(pubs...), opts...)
		if i == 0 {
			hub = p
		}
	}
	before := replicationGoroutines(t, "exchangeLater")
	sn.ConnectAll() // every replicator sees every other connect
	if _, err := hub.log.Append(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := replicationGoroutines(t, "exchangeLater") - before; got != 0 {
		t.Errorf("%d goroutines in exchangeLater after %d peers connected, want none", got, peers)
	}
	if got, want := replicationGoroutines(t, "reexchangeLoop"), peers+1; got != want {
		t.Errorf("%d reexchange loops, want one per replicator (%d)", got, want)
	}
}
