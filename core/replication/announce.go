package replication

import (
	"context"
	"fmt"
)

// Announce publishes the current heads of the log with id now, as a
// digest, and returns once the network accepted the message. A caller
// that is about to Remove a log it just wrote to (a member leaving a
// group) calls it first, so that its last entry is announced before the
// log stops being replicated; local appends are otherwise announced in the
// background.
func (r *Replicator) Announce(ctx context.Context, id LogID) error {
	rep := r.replica(id)
	if rep == nil {
		return fmt.Errorf("announce log %s: %w", id, ErrUnknownLog)
	}
	heads := sortHeads(rep.log.Heads())
	if len(heads) == 0 {
		return nil
	}
	a := &Announcement{Digest: true, Log: rep.id, Heads: heads}
	data, err := rep.keys.Seal(a)
	if err != nil {
		return fmt.Errorf("announce log %s: %w", id, err)
	}
	if err := r.net.Publish(ctx, rep.topic, data); err != nil {
		return fmt.Errorf("announce log %s: %w", id, err)
	}
	rep.mu.Lock()
	rep.announced++
	rep.mu.Unlock()
	return nil
}

// RetryMissing queues joins, now, of the heads peers named for the log
// with id that are still missing here, the heads kept after a join
// (WithMissingRetry) among them (anti-entropy does the same every
// interval). A caller whose other state just changed calls it: a group's
// messages refused because the group's membership log lagged behind
// (log.ErrNotYetAllowed) are fetched again as soon as the membership
// entries arrive.
func (r *Replicator) RetryMissing(ctx context.Context, id LogID) error {
	rep := r.replica(id)
	if rep == nil {
		return fmt.Errorf("retry log %s: %w", id, ErrUnknownLog)
	}
	peers, err := r.net.Peers(ctx)
	if err != nil {
		return fmt.Errorf("retry log %s: list peers: %w", id, err)
	}
	rep.retryMissing(peerSet(peers))
	rep.retryKept(true)
	return nil
}
