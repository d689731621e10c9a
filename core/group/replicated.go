package group

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// labelReplicationKey derives a group's replication key from its genesis
// secret.
const labelReplicationKey = "skein/v1/group/replication-key"

// replicationKey derives the replication key of group from its genesis
// secret.
func replicationKey(group crypto.PublicKey, genesis *[32]byte) ([32]byte, error) {
	return crypto.DeriveKey(genesis[:], group[:], labelReplicationKey)
}

// ReplicationKey returns the group's replication key: the secret from which
// a replicator derives the group's pubsub topic and the wire ids of its
// logs (core/replication.Topic). It is derived from the genesis secret and
// never changes, so the topic stays the same across rekeys; invitations
// carry it, and a member gives it to a replication node so that node can
// find and serve the logs. It opens nothing: no message key, header key or
// epoch secret derives from it. A replication node's replica has none
// (ErrNotMember).
func (g *Group) ReplicationKey() ([32]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.replKey == nil {
		return [32]byte{}, fmt.Errorf("replication key of group %s: %w: not held here", g.id.Fingerprint(), ErrNotMember)
	}
	return *g.replKey, nil
}

// Changed returns a channel that is closed at the next change of the
// group's membership state (an entry of the metadata log applied, local or
// replicated). Take a new channel after each change. A join in progress
// (OpenInvitation) waits on it between CompleteJoin attempts.
func (g *Group) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// signalChanged wakes the waiters of Changed; g.mu is held.
func (g *Group) signalChanged() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// ReplicatedLog is one of a group's two logs as a replicator sees it (it
// satisfies core/replication.Log): joining it verifies and admits entries
// exactly as Receive does, then runs the group's processing under the
// group's lock (membership rebuilt from the metadata log, messages opened
// and delivered, this device's chain key shared with new members). Entries
// the group refuses after the log admitted them (a removed member's late
// entries, a message that does not open) are logged and never delivered;
// they are not the log's refusals, so JoinResult does not list them.
type ReplicatedLog struct {
	g    *Group
	l    *log.Log
	meta bool
}

// MetaLog returns the group's metadata log for replication.
func (g *Group) MetaLog() *ReplicatedLog { return &ReplicatedLog{g: g, l: g.meta, meta: true} }

// MessageLog returns the group's message log for replication.
func (g *Group) MessageLog() *ReplicatedLog { return &ReplicatedLog{g: g, l: g.msgs} }

// Channel names the log among the group's two: "meta" or "messages". A
// replicator adds both under the group's replication key with these
// channel names.
func (r *ReplicatedLog) Channel() string {
	if r.meta {
		return "meta"
	}
	return "messages"
}

// Heads returns the log's heads.
func (r *ReplicatedLog) Heads() []cid.Cid { return r.l.Heads() }

// Len returns the number of entries in the log.
func (r *ReplicatedLog) Len() int { return r.l.Len() }

// Has reports whether the log holds the entry c.
func (r *ReplicatedLog) Has(ctx context.Context, c cid.Cid) (bool, error) { return r.l.Has(ctx, c) }

// Subscribe streams the log's new entries (local appends and joined ones)
// until ctx ends.
func (r *ReplicatedLog) Subscribe(ctx context.Context) <-chan *log.Entry { return r.l.Subscribe(ctx) }

// Join fetches and verifies the entries under heads (log.Join with opts,
// e.g. a replicator's block getter), then runs the group's processing of
// what it added. Its result and error are the log's; a failure of the
// processing itself (reading the store) is joined to the error.
//
// Fetching and checking signatures (log.PrepareJoin) run without the
// group's lock: a long catch-up, or a fetch of blocks nobody serves (until
// the replicator's stall timeout), never holds up Send, Messages or the
// other log's processing. Only validation against the membership, the
// commit and the processing run under the lock.
func (r *ReplicatedLog) Join(ctx context.Context, heads []cid.Cid, from string, opts ...log.JoinOption) (log.JoinResult, error) {
	g := r.g
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return log.JoinResult{}, ErrClosed
	}
	p, err := r.l.PrepareJoin(ctx, heads, from, opts...)
	if err != nil {
		return log.JoinResult{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return log.JoinResult{}, ErrClosed
	}
	var res log.JoinResult
	if r.meta {
		res, err = g.commitMeta(ctx, p)
	} else {
		res, err = p.Commit(ctx)
	}
	if len(res.Added) == 0 {
		return res, err
	}
	if r.meta {
		if _, perr := g.applyMeta(ctx, from); perr != nil {
			return res, errors.Join(err, perr)
		}
	}
	var added []*log.Entry
	if !r.meta {
		added = res.Added
	}
	if _, perr := g.processAfterJoin(ctx, added, from); perr != nil {
		return res, errors.Join(err, perr)
	}
	return res, err
}

// joinMeta joins the metadata log; g.mu is held.
func (g *Group) joinMeta(ctx context.Context, heads []cid.Cid, from string, opts []log.JoinOption) (log.JoinResult, error) {
	p, err := g.meta.PrepareJoin(ctx, heads, from, opts...)
	if err != nil {
		return log.JoinResult{}, err
	}
	return g.commitMeta(ctx, p)
}

// commitMeta commits a prepared join of the metadata log, whose access
// check records what it approves in g.pending; g.mu is held.
func (g *Group) commitMeta(ctx context.Context, p *log.PreparedJoin) (log.JoinResult, error) {
	g.pending = newPending()
	defer func() { g.pending = newPending() }()
	return p.Commit(ctx)
}

// applyMeta rebuilds the membership after metadata entries were added and
// returns the entries the replay refused, attributed to from; g.mu is held.
func (g *Group) applyMeta(ctx context.Context, from string) ([]Rejection, error) {
	rs, err := g.rebuild(ctx)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		rs[i].From = from
	}
	return rs, nil
}

// processAfterJoin opens and delivers the added message entries (and those
// waiting for keys), then shares this device's chain key with members that
// lack it and retries what new keys may open; g.mu is held. A replication
// node does none of it.
func (g *Group) processAfterJoin(ctx context.Context, added []*log.Entry, from string) ([]Rejection, error) {
	if g.replica {
		return nil, nil
	}
	rejected := g.processMessages(added, from)
	if g.left || g.closed {
		return rejected, nil
	}
	if err := g.shareChain(ctx); err != nil && !errors.Is(err, ErrNotMember) && !errors.Is(err, ErrRemoved) {
		return rejected, err
	}
	return append(rejected, g.processMessages(nil, from)...), nil
}
