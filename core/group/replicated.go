package group

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

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
// logs (core/replication.Topic), and the group the keys that seal its
// metadata payloads and its envelopes' epochs. It is derived from the
// genesis secret and never changes, so the topic stays the same across
// rekeys; invitations carry it, and a member gives it to a replication
// node so that node can find, check and serve the logs. It reads no
// message: no message key, header key or epoch secret derives from it.
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
// group's lock (new metadata entries applied to the membership, messages
// opened and delivered). Entries
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

// Get returns the entry c of the log (an error wrapping log.ErrNotFound if
// it holds none). With it a replicator answers bulk entry requests
// (replication's EntryReader) for the group's logs, so a member far behind
// catches up in batches instead of one block fetch per entry.
func (r *ReplicatedLog) Get(ctx context.Context, c cid.Cid) (*log.Entry, error) {
	return r.l.Get(ctx, c)
}

// GetRun returns entry c and at most n of the entries just before it in
// the log's order, read together (log.Log.GetRun): a bulk entry
// request's responder reads what it sends in runs.
func (r *ReplicatedLog) GetRun(ctx context.Context, c cid.Cid, n int) ([]*log.Entry, error) {
	return r.l.GetRun(ctx, c, n)
}

// Entries iterates over the log's entries (log.Log.Entries).
func (r *ReplicatedLog) Entries(ctx context.Context, opts ...log.IterOption) iter.Seq2[*log.Entry, error] {
	return r.l.Entries(ctx, opts...)
}

// Subscribe streams the log's new entries (local appends and joined ones)
// until ctx ends.
func (r *ReplicatedLog) Subscribe(ctx context.Context) <-chan *log.Entry { return r.l.Subscribe(ctx) }

// Join fetches and verifies the entries under heads (log.Join with opts,
// e.g. a replicator's block getter), then runs the group's processing of
// what it added. Its result and error are the log's; a failure of the
// processing itself (reading the store) is joined to the error.
//
// Fetching and checking signatures (log.PrepareJoin), and for the
// metadata log opening and decoding the payloads and checking the
// certificates and authorizations they carry, run without the group's
// lock: a long catch-up, or a fetch of blocks nobody serves (until the
// replicator's stall timeout), never holds up Send, Messages or the other
// log's processing. Only validation against the membership, the commit
// and applying what it added run under the lock.
func (r *ReplicatedLog) Join(ctx context.Context, heads []cid.Cid, from string, opts ...log.JoinOption) (log.JoinResult, error) {
	g := r.g
	g.mu.Lock()
	closed, keys, replica := g.closed, g.keys, g.replica
	g.mu.Unlock()
	if closed {
		return log.JoinResult{}, ErrClosed
	}
	if !r.meta && !replica {
		// A member's message join is followed by the synced write of
		// the readable copies it delivers (processMessages): the join's
		// own fsync would only delay them, and a join lost in a crash
		// is fetched again. (A replication node keeps its joins synced:
		// holding entries for others is what it is for.)
		opts = append(slices.Clone(opts), log.WithoutSync())
	}
	p, err := r.l.PrepareJoin(ctx, heads, from, opts...)
	if err != nil {
		return log.JoinResult{}, err
	}
	var decoded map[string]*metaItem
	if r.meta {
		decoded = g.decodeEntries(keys, p.Entries())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return log.JoinResult{}, ErrClosed
	}
	var res log.JoinResult
	if r.meta {
		res, _, err = g.commitMeta(ctx, p, decoded, from)
	} else {
		res, err = p.Commit(ctx)
	}
	if len(res.Added) == 0 {
		return res, err
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

// joinMeta joins the metadata log and applies what it added; g.mu is
// held.
func (g *Group) joinMeta(ctx context.Context, heads []cid.Cid, from string, opts []log.JoinOption) (log.JoinResult, []Rejection, error) {
	p, err := g.meta.PrepareJoin(ctx, heads, from, opts...)
	if err != nil {
		return log.JoinResult{}, nil, err
	}
	return g.commitMeta(ctx, p, g.decodeEntries(g.keys, p.Entries()), from)
}

// commitMeta commits a prepared join of the metadata log, whose entries
// were decoded beforehand (decoded, by CID), and applies the entries it
// added to the membership state. The access check records what it
// approves in g.pending. It returns the log's result and error and the
// entries the state refused, attributed to from. g.mu is held.
func (g *Group) commitMeta(ctx context.Context, p *log.PreparedJoin, decoded map[string]*metaItem, from string) (log.JoinResult, []Rejection, error) {
	g.pending = newAdmission()
	g.inflight = decoded
	defer func() { g.pending, g.inflight = newAdmission(), nil }()
	res, err := p.Commit(ctx)
	if len(res.Added) == 0 {
		return res, nil, err
	}
	rs := g.addItems(g.takeItems(res.Added))
	for i := range rs {
		rs[i].From = from
	}
	return res, rs, err
}

// processAfterJoin opens and delivers the added message entries, and
// retries those waiting for keys the metadata may have brought; g.mu is
// held. A replication node does none of it. (This device shares its
// sending chain with new members when it next sends, not here.)
func (g *Group) processAfterJoin(_ context.Context, added []*log.Entry, from string) ([]Rejection, error) {
	if g.replica {
		return nil, nil
	}
	return g.processMessages(added, from), nil
}
