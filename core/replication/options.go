package replication

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
)

// Defaults, each overridable by an Option.
const (
	// DefaultAntiEntropyInterval is how often every log's digest is
	// published and heads are exchanged with a few peers.
	DefaultAntiEntropyInterval = 10 * time.Second
	// DefaultFetchTimeout is how long a join waits with no block arriving
	// before it gives up (to be retried at the next anti-entropy round).
	DefaultFetchTimeout = 30 * time.Second
	// DefaultParallelJoins bounds the joins of one log that run at once
	// (see WithParallelJoins).
	DefaultParallelJoins = 4
	// DefaultInlineEntryLimit: entries up to this size travel inline.
	DefaultInlineEntryLimit = MaxInlineEntry
	// DefaultInlineBudget bounds the inline bytes of one announcement.
	DefaultInlineBudget = 32 << 10
	// DefaultBlockDuration is how long a misbehaving peer stays cut off.
	DefaultBlockDuration = time.Hour
	// DefaultExchangePeers is how many peers each anti-entropy round
	// exchanges heads with directly.
	DefaultExchangePeers = 2
	// DefaultAnnouncePace is the time one announcement of a log costs
	// once a short burst has been spent (see WithAnnouncePace). It is
	// well under a live message's latency: a writer that sends each
	// message once the last was delivered is never paced (5 ms here made
	// that latency 5 ms).
	DefaultAnnouncePace = 500 * time.Microsecond
	// DefaultRequestTimeout bounds one head exchange.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultRendezvousInterval is how often the peers replicating a
	// topic are looked up (and the rendezvous provided) through the
	// network's content routing.
	DefaultRendezvousInterval = 10 * time.Minute
)

// HeadsProtocol is the direct-request protocol of the head exchange.
const HeadsProtocol = "/skein/heads/1"

// Option configures New.
type Option func(*options) error

type options struct {
	interval       time.Duration
	fetchTimeout   time.Duration
	requestTimeout time.Duration
	inlineEntry    int
	inlineBudget   int
	blockFor       time.Duration
	exchangePeers  int
	parallelism    int
	pace           time.Duration
	bulkEntries    int // 0: no bulk entry fetch
	bulkBytes      int
	rendezvous     time.Duration // 0: no rendezvous
	rendezvousHook func(peerID string)
	peerSeenHook   func(peerID string, log LogID) // see WithPeerSeen
	logger         *slog.Logger
	giveUpAfter    time.Duration
	suite          crypto.Suite // nil: crypto.DefaultSuite()
	reexchange     []time.Duration
	bulkRetry      time.Duration
	// pubsubValidated: every honest node's network validates pubsub
	// messages with ValidateAnnouncement before forwarding them.
	pubsubValidated bool
	parallelJoins   int           // see WithParallelJoins
	missingRetry    time.Duration // see WithMissingRetry; 0: off
}

func defaultOptions() options {
	return options{
		interval:       DefaultAntiEntropyInterval,
		fetchTimeout:   DefaultFetchTimeout,
		requestTimeout: DefaultRequestTimeout,
		inlineEntry:    DefaultInlineEntryLimit,
		inlineBudget:   DefaultInlineBudget,
		blockFor:       DefaultBlockDuration,
		exchangePeers:  DefaultExchangePeers,
		parallelism:    DefaultFetchParallelism,
		pace:           DefaultAnnouncePace,
		bulkEntries:    DefaultBulkEntries,
		bulkBytes:      DefaultBulkBytes,
		rendezvous:     DefaultRendezvousInterval,
		giveUpAfter:    DefaultGiveUpAfter,
		reexchange:     reexchangeAfter,
		bulkRetry:      bulkRetryAfter,
		parallelJoins:  DefaultParallelJoins,
		missingRetry:   DefaultMissingRetry,
		logger:         slog.New(slog.DiscardHandler),
	}
}

func positiveDuration(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("replication option: %s must be positive, got %v", name, d)
	}
	return nil
}

func nonNegativeDuration(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("replication option: %s must not be negative, got %v", name, d)
	}
	return nil
}

// WithReexchange sets the times after a peer connects at which heads are
// exchanged with it again (default 300 ms and 3 s). Until the last, the
// peer also counts as fresh: each announcement is followed by a head
// exchange with it, as pubsub may not deliver to it yet. None: only the
// exchange on connect, then anti-entropy. They must be positive and
// increasing. A simulation with slower or faster links than loopback
// scales them with its latency.
func WithReexchange(after ...time.Duration) Option {
	return func(o *options) error {
		for i, d := range after {
			if err := positiveDuration("re-exchange time", d); err != nil {
				return err
			}
			if i > 0 && d <= after[i-1] {
				return fmt.Errorf("replication option: re-exchange times must increase, got %v after %v", d, after[i-1])
			}
		}
		o.reexchange = append([]time.Duration(nil), after...)
		return nil
	}
}

// WithBulkRetryAfter sets how long a peer whose bulk entry fetch failed
// is asked for entries one block at a time before bulk is tried with it
// again (default 1 minute).
func WithBulkRetryAfter(d time.Duration) Option {
	return func(o *options) error { o.bulkRetry = d; return positiveDuration("bulk retry", d) }
}

// WithSuite sets the crypto suite that seals every topic's announcements
// and digests (default crypto.DefaultSuite()). Every replica of a topic
// must use the same: a sealed announcement of another suite does not
// open (ErrNotSealedForTopic). It must add crypto.SealOverhead, as the
// default does (crypto.CheckSuiteSizes), since MaxSealedSize assumes it.
func WithSuite(s crypto.Suite) Option {
	return func(o *options) error {
		if err := crypto.CheckSuiteSizes(s); err != nil {
			return fmt.Errorf("replication option: %w", err)
		}
		o.suite = s
		return nil
	}
}

// WithAntiEntropyInterval sets the anti-entropy period (default
// DefaultAntiEntropyInterval).
func WithAntiEntropyInterval(d time.Duration) Option {
	return func(o *options) error { o.interval = d; return positiveDuration("anti-entropy interval", d) }
}

// WithFetchTimeout sets how long a join waits with no block arriving before
// it gives up (default DefaultFetchTimeout); a join that keeps receiving
// blocks runs as long as it needs. A join that gives up is retried at the
// next anti-entropy round.
func WithFetchTimeout(d time.Duration) Option {
	return func(o *options) error { o.fetchTimeout = d; return positiveDuration("fetch timeout", d) }
}

// WithParallelJoins bounds the joins of one log that run at once, each for
// a different peer (default DefaultParallelJoins): a peer naming heads
// nobody serves yet stalls only its own join (until the fetch timeout),
// but n such joins stall the log. In a large group over a gossip mesh,
// where announcements come from many relays and a relay may not hold what
// it forwarded yet, more slots keep the log moving (package sim uses 16).
func WithParallelJoins(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("parallel joins %d: want 1..1024", n)
		}
		o.parallelJoins = n
		return nil
	}
}

// WithRequestTimeout bounds one head exchange (default DefaultRequestTimeout).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error { o.requestTimeout = d; return positiveDuration("request timeout", d) }
}

// WithInline sets the largest entry sent inline and the inline bytes of one
// announcement (defaults DefaultInlineEntryLimit, DefaultInlineBudget);
// entryLimit 0 sends nothing inline.
func WithInline(entryLimit, budget int) Option {
	return func(o *options) error {
		if entryLimit < 0 || entryLimit > MaxInlineEntry || budget < 0 || budget > MaxAnnouncementSize/2 {
			return fmt.Errorf("replication option: inline limits %d/%d out of range [0,%d]/[0,%d]",
				entryLimit, budget, MaxInlineEntry, MaxAnnouncementSize/2)
		}
		o.inlineEntry, o.inlineBudget = entryLimit, budget
		return nil
	}
}

// WithBlockDuration sets how long a misbehaving peer is cut off (default
// DefaultBlockDuration).
func WithBlockDuration(d time.Duration) Option {
	return func(o *options) error { o.blockFor = d; return positiveDuration("block duration", d) }
}

// WithExchangePeers sets how many peers each anti-entropy round exchanges
// heads with directly (default DefaultExchangePeers; 0: digests only).
func WithExchangePeers(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("replication option: exchange peers must not be negative, got %d", n)
		}
		o.exchangePeers = n
		return nil
	}
}

// WithFetchParallelism bounds the blocks fetched at once (default
// DefaultFetchParallelism).
func WithFetchParallelism(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("replication option: fetch parallelism must be positive, got %d", n)
		}
		o.parallelism = n
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("replication option: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithAnnouncePace paces the announcements of one log (default
// DefaultAnnouncePace; 0: announce after every append that finds the
// announcer idle): a token bucket lets a few announcements go out back to
// back, then one per pace; appends during a pause are announced together.
// A lone append is announced at once.
func WithAnnouncePace(d time.Duration) Option {
	return func(o *options) error { o.pace = d; return nonNegativeDuration("announce pace", d) }
}

// WithPubsubValidated says whether the network validates every pubsub
// message with ValidateAnnouncement before it forwards or delivers it, on
// every honest node (default false). Over pubsub the sender a message
// arrives from (sdk.PubsubMessage.From) may be a relay, not its author;
// only when every honest relay validates is the peer that hands over a
// malformed announcement, or a malformed or badly signed inline entry,
// proven to misbehave, and only then is it cut off. Without validation such
// messages are logged and dropped. Set it when the network is plugins/ipfs
// with pubsub_validation "skein" (its default).
func WithPubsubValidated(v bool) Option {
	return func(o *options) error { o.pubsubValidated = v; return nil }
}

// WithBulkFetch sets the limits of one bulk entry fetch (EntriesProtocol):
// the most entries and block bytes one request asks for and one response
// to a peer carries (defaults DefaultBulkEntries, DefaultBulkBytes).
// entries 0 turns the bulk fetch off, both ways: entries are then fetched
// only through the network's block getter, and peers' entries requests are
// not answered.
func WithBulkFetch(entries, bytes int) Option {
	return func(o *options) error {
		if entries < 0 || entries > MaxEntriesBatch || (entries > 0 && (bytes < 1 || bytes > MaxEntriesBytes)) {
			return fmt.Errorf("replication option: bulk fetch limits %d entries / %d bytes out of range [0,%d]/[1,%d]",
				entries, bytes, MaxEntriesBatch, MaxEntriesBytes)
		}
		o.bulkEntries, o.bulkBytes = entries, bytes
		return nil
	}
}

// WithRendezvousInterval sets how often the peers replicating each topic
// are looked up through the network's content routing (FindProviders of
// the topic's rendezvous CID, see RendezvousCID) and connected to, and the
// rendezvous provided (default DefaultRendezvousInterval; sooner, from 5 s
// doubling, while no peer of the topic is connected). 0 turns rendezvous
// off: peers then meet only through bootstrap, discovery or explicit
// connects. A network without content routing (no DHT) makes every round
// fail quietly (logged at debug, shown in Status).
func WithRendezvousInterval(d time.Duration) Option {
	return func(o *options) error { o.rendezvous = d; return nonNegativeDuration("rendezvous interval", d) }
}

// WithGiveUpAfter sets how long heads that no peer serves stay missing
// before the replica gives them up (default DefaultGiveUpAfter): they
// leave Status's Missing and are counted in GivenUp, and are fetched
// again only when a peer names them in a head exchange.
func WithGiveUpAfter(d time.Duration) Option {
	return func(o *options) error { o.giveUpAfter = d; return positiveDuration("give-up delay", d) }
}

// WithRendezvousConnected calls f with each peer a rendezvous lookup
// found and connected (how `skein peers` tells peers found through the
// DHT). f must not block.
func WithRendezvousConnected(f func(peerID string)) Option {
	return func(o *options) error { o.rendezvousHook = f; return nil }
}

// WithMissingRetry sets the first retry delay of the heads still missing
// when a join ends (an ancestor not served yet, a writer whose permission
// has not arrived, a fetch that timed out): default DefaultMissingRetry.
// Such a head is kept with up to three of the peers that named it (and its
// block, if it came inline) and retried after d, 2d, 4d … (at most 30 s
// apart, or d if longer), asking those peers in turn, each ask spending a
// token of the asked peer's head fetch budget, until the log has it, its
// write is refused, WithGiveUpAfter has passed, or every peer that named
// it is cut off; at most 1,024 heads a log. 0 turns it off: such heads
// then wait for the next anti-entropy round.
func WithMissingRetry(d time.Duration) Option {
	return func(o *options) error { o.missingRetry = d; return nonNegativeDuration("missing retry", d) }
}
