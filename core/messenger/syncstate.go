package messenger

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

// The states of a group's sync (SyncStatus.State).
const (
	StateInSync      = "in sync"
	StateBehind      = "behind"
	StateUnreachable = "no peer reachable"
	StateNeverSynced = "never synced"
)

// State says where the group's sync stands: StateBehind while entries
// peers named are missing; else StateUnreachable while no peer that
// shares the group is connected; else StateNeverSynced until a sync with
// a peer has completed; else StateInSync.
func (s SyncStatus) State() string {
	for _, l := range s.Logs {
		if l.Missing > 0 {
			return StateBehind
		}
	}
	switch {
	case !s.Reachable:
		return StateUnreachable
	case s.LastSync.IsZero():
		return StateNeverSynced
	}
	return StateInSync
}

// connectedPeers returns the peers the network is connected to now.
func (m *Messenger) connectedPeers(ctx context.Context) map[string]bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out := map[string]bool{}
	ps, err := m.cfg.Network.Peers(ctx)
	if err != nil {
		m.logger.Debug("sync status: connected peers", "err", err)
		return out
	}
	for _, p := range ps {
		out[p.ID] = true
	}
	return out
}

// withReach fills s's reachability from the peers seen replicating ids;
// with none seen in this run, LastReachable is what the last run saved.
func (m *Messenger) withReach(s SyncStatus, ids []replication.LogID, connected map[string]bool) SyncStatus {
	s.Reachable, s.LastReachable = m.reachability(ids, connected)
	if !s.Reachable && s.LastReachable.IsZero() {
		s.LastReachable = m.savedReach(s.Group)
	}
	return s
}

// reachPrefix is where each group's last reachable time is kept at Close,
// so that "no peer reachable since" survives a restart.
const reachPrefix = "messenger/reach/"

func reachKey(gid crypto.PublicKey) []byte { return []byte(reachPrefix + hex.EncodeToString(gid[:])) }

// savedReach returns the time saved for gid (zero: none).
func (m *Messenger) savedReach(gid crypto.PublicKey) time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := m.cfg.Store.Get(ctx, reachKey(gid))
	if err != nil {
		return time.Time{}
	}
	var t time.Time
	if t.UnmarshalText(raw) != nil {
		return time.Time{}
	}
	return t
}

// saveReach saves, for each group with logs ids, when a peer of it was
// last reachable (now if one is connected), unless no peer was seen in
// this run.
func (m *Messenger) saveReach(ctx context.Context, groups map[crypto.PublicKey][]replication.LogID) {
	connected := m.connectedPeers(ctx)
	var ops []sdk.Op
	for gid, ids := range groups {
		up, last := m.reachability(ids, connected)
		if up {
			last = time.Now()
		}
		if last.IsZero() {
			continue
		}
		raw, _ := last.UTC().MarshalText()
		ops = append(ops, sdk.Op{Key: reachKey(gid), Value: raw})
	}
	if len(ops) == 0 {
		return
	}
	if err := m.cfg.Store.Batch(ctx, ops, false); err != nil {
		m.logger.Debug("save when peers were last reachable", "err", err)
	}
}
