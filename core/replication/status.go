package replication

import (
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// Status is a snapshot of replication: every replicated log and the peers
// that are cut off.
type Status struct {
	Logs    []LogStatus
	Blocked []BlockedPeer
}

// RendezvousStatus is the state of one topic's rendezvous rounds: the
// peers found and connected to, when the last round ended (zero: none yet,
// or rendezvous off) and its error ("" if none; e.g. a network without a
// DHT).
type RendezvousStatus struct {
	Found uint64
	Last  time.Time
	Error string
}

// LogStatus is the sync state of one replicated log.
type LogStatus struct {
	// ID is the log's wire id; Topic its pubsub topic; Channel the name it
	// was added under.
	ID      LogID
	Topic   string
	Channel string
	// Entries is the number of entries in the local replica.
	Entries int
	// LocalHeads are the local heads, sorted by binary CID.
	LocalHeads []cid.Cid
	// Remote lists, per peer, the heads it last said it has.
	Remote []PeerHeads
	// Missing are remote heads not (yet) in the local log, sorted: those
	// peers last named and those kept for retry after a join
	// (WithMissingRetry).
	Missing []cid.Cid
	// Queued is the number of peers whose heads wait to be joined;
	// Fetching is true while a join runs; Pending counts the CIDs the last
	// join deferred at its limit.
	Queued   int
	Fetching bool
	Pending  int
	// LastSync is when a join or head exchange last left this replica
	// with everything a peer named (zero: never).
	LastSync time.Time
	// LastAnnounce is when this replica last published (zero: never).
	LastAnnounce time.Time
	// Announced counts announcements and digests sent; Received those
	// received (and head-exchange results); Added the entries joins added;
	// Rejected the entries rejected as proof of misbehaviour.
	Announced, Received, Added, Rejected uint64
	// GivenUp counts the remote heads given up: missing for longer than
	// WithGiveUpAfter with no peer serving them (a flooder's bogus heads,
	// or a writer gone for good). They are not in Missing.
	GivenUp uint64
	// BulkRequests counts bulk entry requests (EntriesProtocol) peers
	// answered; BulkReceived the entry blocks they carried; BulkServed the
	// entry blocks this replica sent to peers.
	BulkRequests, BulkReceived, BulkServed uint64
	// Rendezvous is the state of the topic's rendezvous (shared by the
	// logs of a topic).
	Rendezvous RendezvousStatus
	// Progress counts what joins fetched and estimates what is missing.
	Progress Progress
}

// PeerHeads is what one peer said it has of a log.
type PeerHeads struct {
	Peer    string
	Heads   []cid.Cid
	Missing int // of Heads, how many are not in the local log
	Seen    time.Time
}

// BlockedPeer is a peer cut off for misbehaviour, until Until.
type BlockedPeer struct {
	Peer   string
	Reason string
	Until  time.Time
}

// Status returns the sync state of every replicated log, sorted by ID.
func (r *Replicator) Status() Status {
	var st Status
	for _, rep := range r.replicas() {
		st.Logs = append(st.Logs, rep.status())
	}
	now := time.Now()
	r.mu.Lock()
	for i := range st.Logs {
		if ts := r.topics[st.Logs[i].Topic]; ts != nil {
			st.Logs[i].Rendezvous = ts.rendezvous
		}
	}
	for _, b := range r.blocked {
		if now.Before(b.Until) {
			st.Blocked = append(st.Blocked, b)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(st.Blocked, func(a, b BlockedPeer) int { return strings.Compare(a.Peer, b.Peer) })
	return st
}

func (rep *replica) status() LogStatus {
	s := LogStatus{ID: rep.id, Topic: rep.topic, Channel: rep.channel,
		Entries: rep.log.Len(), LocalHeads: rep.log.Heads(), Progress: rep.progressStatus()}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	seen := map[string]bool{}
	for p, rs := range rep.remote {
		s.Remote = append(s.Remote, PeerHeads{Peer: p, Heads: slices.Clone(rs.heads), Missing: len(rs.missing), Seen: rs.seen})
		for _, c := range rs.missing {
			if !seen[c.KeyString()] {
				seen[c.KeyString()] = true
				s.Missing = append(s.Missing, c)
			}
		}
	}
	for k, kh := range rep.kept {
		if !seen[k] {
			seen[k] = true
			s.Missing = append(s.Missing, kh.c)
		}
	}
	slices.SortFunc(s.Remote, func(a, b PeerHeads) int { return strings.Compare(a.Peer, b.Peer) })
	slices.SortFunc(s.Missing, compareCIDs)
	if len(s.Missing) == 0 && len(rep.busy) == 0 && len(rep.queue) == 0 {
		rep.nothingMissing()
	}
	s.Queued = len(rep.queue)
	s.Fetching = len(rep.busy) > 0
	s.Pending = rep.pending
	s.LastSync, s.LastAnnounce = rep.lastSync, rep.lastAnn
	s.Announced, s.Received, s.Added, s.Rejected = rep.announced, rep.nReceived, rep.added, rep.rejected
	s.GivenUp = rep.givenUp
	s.BulkRequests, s.BulkReceived, s.BulkServed = rep.bulkRequests, rep.bulkReceived, rep.bulkServed
	if len(s.Missing) == 0 {
		s.Progress.MissingEntries = 0
	}
	return s
}
