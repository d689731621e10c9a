package messenger

import (
	"context"
	"time"

	"github.com/skein-p2p/skein/core/replication"
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

// withReach fills s's reachability from the peers seen replicating ids.
func (m *Messenger) withReach(s SyncStatus, ids []replication.LogID, connected map[string]bool) SyncStatus {
	s.Reachable, s.LastReachable = m.reachability(ids, connected)
	return s
}
