package replication_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// gatedAccess admits the writer only once open is set; before, it refuses
// with an error wrapping notYet (nil: a plain refusal).
type gatedAccess struct {
	writer ed25519.PublicKey
	open   *atomic.Bool
	notYet error
}

func (a gatedAccess) CanWrite(_ context.Context, e *log.Entry) error {
	if !e.Writer.Equal(a.writer) {
		return fmt.Errorf("writer %x unknown", e.Writer[:4])
	}
	if a.open.Load() {
		return nil
	}
	if a.notYet != nil {
		return fmt.Errorf("membership not here yet: %w", a.notYet)
	}
	return fmt.Errorf("writer %x not allowed", e.Writer[:4])
}

// An entry refused because state it depends on has not arrived
// (log.ErrNotYetAllowed) is fetched again as soon as RetryMissing is
// called, with no write and no anti-entropy round (the interval here is an
// hour); a plain refusal is remembered and not retried then.
func TestRetryMissingAfterNotYetAllowed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		notYet    error
		retrieved bool
	}{
		{"not yet allowed: retried at once", log.ErrNotYetAllowed, true},
		{"refused: remembered, not retried", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := simnet.New()
			t.Cleanup(func() { _ = sn.Close() })
			wk := newKey(t)
			opts := []replication.Option{replication.WithAntiEntropyInterval(time.Hour)}
			an, _ := sn.AddNode("a")
			bn, _ := sn.AddNode("b")
			a := startPeer(t, "a", an, wk, log.AllowWriters(wk.Public().(ed25519.PublicKey)), opts...)
			var open atomic.Bool
			b := startPeer(t, "b", bn, newKey(t), gatedAccess{writer: wk.Public().(ed25519.PublicKey), open: &open, notYet: tc.notYet}, opts...)
			sn.ConnectAll()
			if _, err := a.log.Append(context.Background(), []byte("early")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, func() string { return "b refuses the entry" }, func() bool {
				st := b.rep.Status()
				return len(st.Logs) == 1 && st.Logs[0].Received > 0 && !st.Logs[0].Fetching && st.Logs[0].Queued == 0 && len(st.Logs[0].Missing) == 1
			})
			if b.log.Len() != 0 {
				t.Fatal("b admitted the entry before its writer was allowed")
			}
			open.Store(true)
			id := b.rep.Status().Logs[0].ID
			if err := b.rep.RetryMissing(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if !tc.retrieved {
				// Nothing is queued: the refusal is remembered.
				st := b.rep.Status().Logs[0]
				if st.Queued != 0 || st.Fetching || b.log.Len() != 0 {
					t.Fatalf("a remembered refusal was retried: %+v", st)
				}
				return
			}
			waitFor(t, 10*time.Second, func() string { return "b retried and admitted the entry" }, func() bool { return b.log.Len() == 1 })
		})
	}
	if err := (&replication.Replicator{}).RetryMissing(context.Background(), replication.LogID{}); err == nil {
		t.Fatal("RetryMissing of an unknown log succeeded")
	}
}
