package messenger

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
)

// Replica is what a Replicator needs of one group: its id, its heads, and
// merging a remote replica's heads. *group.Group satisfies it.
type Replica interface {
	ID() crypto.PublicKey
	Heads() group.Heads
	Receive(ctx context.Context, from string, heads group.Heads) error
}

var _ Replica = (*group.Group)(nil)

// Replicator keeps the logs of the groups a messenger holds in sync with
// other nodes. NewNetworkReplicator is the built-in one over an
// sdk.Network; core/replication can take its place through Config.
type Replicator interface {
	// Add starts replicating r: merging the heads peers announce and
	// answering their head requests. Adding a group twice is a no-op.
	Add(ctx context.Context, r Replica) error
	// Remove stops replicating the group.
	Remove(id crypto.PublicKey)
	// Announce tells peers the group's current heads (after a local write).
	Announce(ctx context.Context, id crypto.PublicKey) error
	// FetchHeads asks peers that replicate group id for its heads, until
	// one answers or ctx ends; a joiner needs them before it holds the
	// group. It returns the peer that answered.
	FetchHeads(ctx context.Context, id crypto.PublicKey) (from string, heads group.Heads, err error)
	// Status reports the group's sync state.
	Status(ctx context.Context, id crypto.PublicKey) (SyncStatus, error)
	// Close stops every replication.
	Close() error
}

// LogSync is the sync state of one of a group's logs.
type LogSync struct {
	Log string // "meta" or "messages"
	// LocalHeads are this replica's heads; RemoteHeads the union of the
	// latest heads peers announced.
	LocalHeads  []cid.Cid
	RemoteHeads []cid.Cid
	// Missing counts remote heads whose entries are not here yet.
	Missing int
}

// SyncStatus is a group's sync state.
type SyncStatus struct {
	Group crypto.PublicKey
	Logs  []LogSync
	// LastSync is when remote heads were last merged without error (zero:
	// never).
	LastSync time.Time
	// Peers that announced or answered heads for this group.
	Peers []string
}

// InSync reports whether nothing known to exist elsewhere is missing here.
func (s SyncStatus) InSync() bool {
	for _, l := range s.Logs {
		if l.Missing > 0 {
			return false
		}
	}
	return true
}
