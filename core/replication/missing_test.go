package replication_test

import (
	"context"
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// waitSim polls cond on the bubble's fake clock until it holds or d of
// fake time has passed; it reports whether cond held.
func waitSim(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond) // fake time: polling, not synchronising
	}
	return true
}

// idleMissing reports whether p's log is idle (no join queued or running)
// with n heads missing.
func idleMissing(p *peerNode, n int) bool {
	st := p.rep.Status()
	return len(st.Logs) == 1 && !st.Logs[0].Fetching && st.Logs[0].Queued == 0 && len(st.Logs[0].Missing) == n
}

// A head still missing when its join ends is retried on the replica's
// own timer (WithMissingRetry), not only at the next anti-entropy round
// (an hour here), nor only when someone calls RetryMissing: once what it
// lacked arrives, the next retry joins it. With the retry off, nothing
// fetches it again within the test's ten minutes.
func TestMissedHeadRetriedWithoutAntiEntropy(t *testing.T) {
	cases := []struct {
		name string
		// setup makes b miss one head of a's writer, then returns what
		// makes it available.
		setup func(t *testing.T, sn *simnet.Network, opts []replication.Option) (b *peerNode, release func())
	}{
		{"the parent arrives later", func(t *testing.T, sn *simnet.Network, opts []replication.Option) (*peerNode, func()) {
			wk := newKey(t)
			bn, _ := sn.AddNode("b")
			b := startPeer(t, "b", bn, newKey(t), log.AllowWriters(wk.Public().(ed25519.PublicKey)), opts...)
			a, _ := sn.AddNode("a")
			sn.ConnectAll()
			proveToAll(t, sn, a)
			// The writer's two entries, made offline: b is told of the
			// second (inline) while nobody serves the first.
			w, err := log.Open(context.Background(), testLogID, log.NewMemBlockStore(), log.NewMemKV(), log.NewKeySigner(wk), log.AllowWriters(wk.Public().(ed25519.PublicKey)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Close() })
			e1, err := w.Append(context.Background(), []byte("parent"))
			if err != nil {
				t.Fatal(err)
			}
			e2, err := w.Append(context.Background(), []byte("child"))
			if err != nil {
				t.Fatal(err)
			}
			topic, err := replication.Topic(testSecret)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Publish(context.Background(), topic, announce(t, topic, []cid.Cid{e2.CID()}, [][]byte{e2.Bytes()})); err != nil {
				t.Fatal(err)
			}
			return b, func() { putRaw(t, a, e1.Bytes()) }
		}},
		{"the write permission arrives later", func(t *testing.T, sn *simnet.Network, opts []replication.Option) (*peerNode, func()) {
			wk := newKey(t)
			an, _ := sn.AddNode("a")
			bn, _ := sn.AddNode("b")
			a := startPeer(t, "a", an, wk, log.AllowWriters(wk.Public().(ed25519.PublicKey)), opts...)
			var open atomic.Bool
			b := startPeer(t, "b", bn, newKey(t), gatedAccess{writer: wk.Public().(ed25519.PublicKey), open: &open, notYet: log.ErrNotYetAllowed}, opts...)
			sn.ConnectAll()
			if _, err := a.log.Append(context.Background(), []byte("early")); err != nil {
				t.Fatal(err)
			}
			return b, func() { open.Store(true) }
		}},
	}
	for _, tc := range cases {
		for _, retry := range []time.Duration{replication.DefaultMissingRetry, 0} {
			name := tc.name + "/retry " + retry.String()
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					sn := simnet.New()
					t.Cleanup(func() { _ = sn.Close() })
					opts := []replication.Option{
						replication.WithAntiEntropyInterval(time.Hour),
						replication.WithFetchTimeout(5 * time.Second),
						replication.WithMissingRetry(retry),
					}
					b, release := tc.setup(t, sn, opts)
					// Past the first join, its fetch timeout and the
					// re-exchanges after connecting: b is idle, missing
					// the head.
					time.Sleep(30 * time.Second)
					if !waitSim(time.Minute, func() bool { return idleMissing(b, 1) }) {
						t.Fatalf("b is not idle with one head missing: %+v", b.rep.Status().Logs)
					}
					if b.log.Len() != 0 {
						t.Fatal("b joined the head before what it lacked arrived")
					}
					release()
					got := waitSim(10*time.Minute, func() bool { return b.log.Len() > 0 && idleMissing(b, 0) })
					switch {
					case retry > 0 && !got:
						t.Fatalf("the missing head was not retried: b has %d entries, status %+v", b.log.Len(), b.rep.Status().Logs)
					case retry == 0 && got:
						t.Fatal("with the retry off, the head arrived anyway: the test does not test the retry")
					}
				})
			})
		}
	}
}
