package log

import (
	"github.com/ipfs/go-cid"
)

// JoinResult reports what one Join did.
type JoinResult struct {
	// Added lists the entries that entered the log, in total order.
	Added []*Entry
	// Rejected lists every entry that did not enter, with the peer and the
	// reason (also returned as a *JoinError).
	Rejected []Rejection
	// Pending lists the CIDs the join did not fetch because it hit a join
	// limit (ErrJoinLimit); they are older than what it fetched. Joining
	// them next, then the heads again, continues the catch-up.
	Pending []cid.Cid
}

// JoinOption configures one Join.
type JoinOption func(*joinOptions)

type joinOptions struct {
	getter   BlockGetter
	noSync   bool
	verified func(cid.Cid) bool
}

// Verified tells the Join which entries' signatures were verified already
// (an announcement's inline entries, checked by the pubsub validator before
// the announcement was delivered): their blocks, decoded only under the CID
// their bytes hash to, are the bytes that verified, so they are not
// verified again. f must say true only of a CID whose very block passed
// Entry.VerifySignature.
func Verified(f func(cid.Cid) bool) JoinOption { return func(o *joinOptions) { o.verified = f } }

// WithoutSync makes the Join's write neither synced (even with
// WithSyncWrites) nor waited for: Commit returns once the entries are
// staged (in the log, readable, named by Heads once written) and the write
// follows; a failed write undoes them as an append's would. A join lost in
// a crash is fetched again from peers, so a caller may skip the wait when
// nothing else needs it (core/group hands the messages a join delivered to
// the app, then syncs their readable copies in a batch of its own).
func WithoutSync() JoinOption { return func(o *joinOptions) { o.noSync = true } }

// FetchFrom makes the Join fetch blocks through g instead of the log's
// BlockStore, e.g. to read entries that arrived inline with an announcement
// before asking the network. Accepted blocks are still Put into the log's
// BlockStore.
func FetchFrom(g BlockGetter) JoinOption { return func(o *joinOptions) { o.getter = g } }

// IterOption selects the range and direction of Entries.
type IterOption func(*iterOptions)

type iterOptions struct {
	since, until       cid.Cid
	sincePos, untilPos int // untilPos < 0: no bound
	reverse            bool
	limit              int
}

// Since starts after the entry c (exclusive). Entries yields an error
// wrapping ErrNotFound if c is not in the log.
func Since(c cid.Cid) IterOption { return func(o *iterOptions) { o.since = c } }

// Until stops before the entry c (exclusive). Entries yields an error
// wrapping ErrNotFound if c is not in the log.
func Until(c cid.Cid) IterOption { return func(o *iterOptions) { o.until = c } }

// SincePosition starts at position i of the total order (inclusive; 0 is
// the first entry).
func SincePosition(i int) IterOption { return func(o *iterOptions) { o.sincePos = i } }

// UntilPosition stops before position j of the total order (exclusive).
func UntilPosition(j int) IterOption { return func(o *iterOptions) { o.untilPos = j } }

// Reverse iterates from the newest entry of the range to the oldest.
func Reverse() IterOption { return func(o *iterOptions) { o.reverse = true } }

// Limit yields at most n entries (n <= 0: no limit).
func Limit(n int) IterOption { return func(o *iterOptions) { o.limit = n } }
