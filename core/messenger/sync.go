package messenger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
)

// LogSync is the sync state of one of a group's logs.
type LogSync struct {
	Log string // "meta" or "messages"
	// LocalHeads are this replica's heads; RemoteHeads the union of the
	// latest heads peers announced.
	LocalHeads  []cid.Cid
	RemoteHeads []cid.Cid
	// Missing counts remote heads whose entries are not here yet.
	Missing int
	// Entries is the number of entries held here.
	Entries int
	// GivenUp counts remote heads given up: no peer served them within
	// the replicator's give-up delay (replication.LogStatus.GivenUp).
	GivenUp uint64
	// Fetched and FetchedBytes count the entries joins fetched from peers
	// since the node started; MissingEntries estimates the entries still
	// missing (from Lamport clocks; 0 with Missing > 0: not known yet).
	Fetched, FetchedBytes, MissingEntries uint64
	// Unheld counts this device's entries no other node is known to hold
	// yet (held.go).
	Unheld int

	id replication.LogID
}

// SyncStatus is a group's sync state.
type SyncStatus struct {
	Group crypto.PublicKey
	Logs  []LogSync
	// LastSync is when remote heads were last joined with nothing left
	// missing (zero: never).
	LastSync time.Time
	// Peers that announced or exchanged heads for this group.
	Peers []string
	// Rendezvous is the state of the group's DHT rendezvous (zero Last:
	// no round yet, or rendezvous off).
	Rendezvous replication.RendezvousStatus
	// Reachable: a peer that shares the group is connected now. If not,
	// LastReachable is when one last was (zero: never since the node
	// started).
	Reachable     bool
	LastReachable time.Time
}

// InSync reports whether the group is known to be in sync: nothing known
// to exist elsewhere is missing here, a peer that shares it is reachable
// now, and a sync with a peer has completed. A group alone, or never
// synced, is not in sync whatever it holds: see State.
func (s SyncStatus) InSync() bool {
	return s.State() == StateInSync
}

// groupLog is one of a group's logs as the replicator joins it: the
// group's processing runs in the join (group.ReplicatedLog), the group's
// keys are saved after it added anything, and then added runs.
type groupLog struct {
	*group.ReplicatedLog
	g     *group.Group
	dirty func(*group.Group) // nil: nothing to save (a replication node)
	added func()             // nil: nothing
}

func (l groupLog) Join(ctx context.Context, heads []cid.Cid, from string, opts ...log.JoinOption) (log.JoinResult, error) {
	res, err := l.ReplicatedLog.Join(ctx, heads, from, opts...)
	if len(res.Added) > 0 {
		if l.dirty != nil {
			l.dirty(l.g)
		}
		if l.added != nil {
			l.added()
		}
	}
	return res, err
}

// replicate adds g's two logs to the replicator under key (the group's
// replication key) and returns their wire ids, metadata log first. New
// metadata entries make the message log retry at once what it refused for
// want of them (a message of a new member or epoch that arrived first).
func (m *Messenger) replicate(g *group.Group, key [32]byte, dirty func(*group.Group)) ([]replication.LogID, error) {
	msgs, err := m.repl.Add(key[:], g.MessageLog().Channel(), groupLog{ReplicatedLog: g.MessageLog(), g: g, dirty: dirty})
	if err != nil {
		return nil, fmt.Errorf("replicate group %s: %w", g.ID().Fingerprint(), err)
	}
	retry := func() {
		if err := m.repl.RetryMissing(context.Background(), msgs); err != nil {
			m.logger.Debug("retry messages after membership change", "group", g.ID().Fingerprint(), "err", err)
		}
	}
	meta, err := m.repl.Add(key[:], g.MetaLog().Channel(), groupLog{ReplicatedLog: g.MetaLog(), g: g, dirty: dirty, added: retry})
	if err != nil {
		m.unreplicate([]replication.LogID{msgs})
		return nil, fmt.Errorf("replicate group %s: %w", g.ID().Fingerprint(), err)
	}
	return []replication.LogID{meta, msgs}, nil
}

// unreplicate stops replicating the logs with ids.
func (m *Messenger) unreplicate(ids []replication.LogID) {
	for _, id := range ids {
		if err := m.repl.Remove(id); err != nil && !errors.Is(err, replication.ErrUnknownLog) {
			m.logger.Warn("stop replicating log", "log", id, "err", err)
		}
	}
}

// syncStatus assembles a group's sync state from the replicator's status
// of its logs, in the order of ids.
func syncStatus(id crypto.PublicKey, ids []replication.LogID, st replication.Status) SyncStatus {
	out := SyncStatus{Group: id}
	peers := map[string]bool{}
	// In the order of ids: the metadata log first.
	for _, id := range ids {
		i := slices.IndexFunc(st.Logs, func(ls replication.LogStatus) bool { return ls.ID == id })
		if i < 0 {
			continue
		}
		ls := st.Logs[i]
		s := LogSync{Log: ls.Channel, LocalHeads: ls.LocalHeads, Missing: len(ls.Missing), Entries: ls.Entries, GivenUp: ls.GivenUp,
			Fetched: ls.Progress.Fetched, FetchedBytes: ls.Progress.FetchedBytes, MissingEntries: ls.Progress.MissingEntries, id: id}
		seen := map[string]bool{}
		for _, ph := range ls.Remote {
			peers[ph.Peer] = true
			for _, c := range ph.Heads {
				if !seen[c.KeyString()] {
					seen[c.KeyString()] = true
					s.RemoteHeads = append(s.RemoteHeads, c)
				}
			}
		}
		slices.SortFunc(s.RemoteHeads, func(a, b cid.Cid) int { return slices.Compare(a.Bytes(), b.Bytes()) })
		if ls.LastSync.After(out.LastSync) {
			out.LastSync = ls.LastSync
		}
		out.Rendezvous = ls.Rendezvous // one topic for both logs
		out.Logs = append(out.Logs, s)
	}
	for p := range peers {
		out.Peers = append(out.Peers, p)
	}
	slices.Sort(out.Peers)
	return out
}

// Topic returns the pubsub topic on which the group ref names is
// replicated (core/replication.Topic of its replication key), for
// diagnostics and tests. Anyone who holds an invitation or is or was a
// member can compute it; the group id alone does not give it.
func (m *Messenger) Topic(ref string) (string, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return "", err
	}
	key, err := h.g.ReplicationKey()
	if err != nil {
		return "", err
	}
	return replication.Topic(key[:])
}
