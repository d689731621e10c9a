package group

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/metrics"
)

// Storage is where a group keeps its two logs: entry blocks in Blocks
// (shared with the network), heads and indices in KV (several groups may
// share one KV; each uses its own key prefix).
type Storage struct {
	Blocks log.BlockStore
	KV     log.KV
}

// Option configures a group when it is created, joined or opened.
type Option func(*config) error

type config struct {
	logger  *slog.Logger
	logOpts []log.Option
	window  int
	suite   crypto.Suite
	// msgOrder is the message log's order (nil: the log's default).
	msgOrder log.Order
	// suiteSet: WithSuite was given (a group that knows its own suite
	// then checks it against this one).
	suiteSet bool
}

// WithSuite sets the crypto suite that seals everything of the group:
// message headers and bodies, metadata payloads, envelope epochs, shares
// of chain keys and epoch secrets, and the local copies of delivered
// messages (default crypto.DefaultSuite()). The suite is part of the
// group: Invite writes it into the invitation (when not the default) and
// SaveKeys into the saved keys, so a joiner or a reopened group takes it
// from there. Given here as well, it must agree: a group of another suite
// is an error wrapping ErrSuiteMismatch, never a group whose payloads do
// not open. The suite must add the default suite's overheads
// (crypto.CheckSuiteSizes; the wire formats have fixed-size fields) and
// seal under a given ephemeral key (crypto.EphemeralSealer).
func WithSuite(s crypto.Suite) Option {
	return func(c *config) error {
		if err := crypto.CheckSuiteSizes(s); err != nil {
			return err
		}
		if n := len(s.Name()); n == 0 || n > maxSuiteName {
			return fmt.Errorf("crypto suite %q: %w: its name must be 1 to %d bytes", s.Name(), crypto.ErrInvalidOption, maxSuiteName)
		}
		if _, ok := s.(crypto.EphemeralSealer); !ok {
			return fmt.Errorf("crypto suite %q: %w: it cannot seal under a given ephemeral key (crypto.EphemeralSealer)", s.Name(), crypto.ErrInvalidOption)
		}
		c.suite, c.suiteSet = s, true
		return nil
	}
}

// WithMessageOrder sets the total order of the message log (default
// log.LamportOrder): how concurrent messages are listed, the same on
// every member that uses the same order. Every member of a group must use
// the same; the log records it, and reopening with another fails
// (log.ErrOrderMismatch). The metadata log keeps the default: the
// membership is defined over that order (compareItems in the fold), so it
// is part of the protocol, not a parameter.
func WithMessageOrder(o log.Order) Option {
	return func(c *config) error {
		if o == nil {
			return errors.New("nil message order")
		}
		c.msgOrder = o
		return nil
	}
}

// groupSuite makes the group use the suite it was made with (named in
// an invitation or its saved keys): the one WithSuite gave if the names
// agree, else a built-in suite of that name.
func groupSuite(name string) Option {
	return func(c *config) error {
		if c.suiteSet {
			if c.suite.Name() != name {
				return fmt.Errorf("%w: the group seals with %q, this device was given %q (group.WithSuite, or crypto.suite in a scenario)", ErrSuiteMismatch, name, c.suite.Name())
			}
			return nil
		}
		s, err := crypto.SuiteByName(name)
		if err != nil {
			return fmt.Errorf("%w: the group seals with %q, which is not built in: pass it with group.WithSuite", ErrSuiteMismatch, name)
		}
		c.suite = s
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithLogOptions passes options (limits, parallelism) to both of the
// group's logs.
func WithLogOptions(opts ...log.Option) Option {
	return func(c *config) error { c.logOpts = append(c.logOpts, opts...); return nil }
}

// WithRatchetWindow sets the skipped-key window of every receiving chain
// (default crypto.DefaultRatchetWindow).
func WithRatchetWindow(n int) Option {
	return func(c *config) error {
		if n < 1 || n > crypto.MaxRatchetWindow {
			return fmt.Errorf("ratchet window %d out of range 1..%d", n, crypto.MaxRatchetWindow)
		}
		c.window = n
		return nil
	}
}

// Heads are the heads of a group's two logs: what a replica announces and
// what another passes to Receive.
type Heads struct {
	Meta     []cid.Cid
	Messages []cid.Cid
}

// Message is one delivered message.
type Message struct {
	// CID is the message log entry.
	CID cid.Cid
	// Sender is the sending device; Account the account that certified it.
	Sender  crypto.PublicKey
	Account crypto.PublicKey
	Epoch   EpochID
	// Index is the sender's ratchet index in Epoch.
	Index uint64
	// SentAt is the sender's clock (informative, not trusted for order).
	SentAt time.Time
	// Time is the entry's Lamport time.
	Time uint64
	Body []byte
}

// Member is one member account and its member devices.
type Member struct {
	Account crypto.PublicKey
	Devices []crypto.PublicKey
}

type msgRef struct {
	sender crypto.PublicKey
	epoch  EpochID
	index  uint64
}

type writerStats struct {
	maxTime uint64
	limits  map[EpochID]uint64 // highest index seen + 1
}

// Group is one device's replica of a group: its two logs, the membership
// state computed from the metadata log, and the keys this device holds.
// It is safe for concurrent use; operations are serialised.
type Group struct {
	mu       sync.Mutex
	saveMu   sync.Mutex // held by SaveKeys (taken before mu)
	id       crypto.PublicKey
	kind     Kind
	groupKey *crypto.SigningKey // nil unless this device holds it
	me       *Identity
	meta     *log.Log
	msgs     *log.Log
	logger   *slog.Logger
	window   int
	closed   bool
	left     bool
	replica  bool         // a replication node: verifies and stores, holds no secret
	replKey  *[32]byte    // the replication key
	suite    crypto.Suite // seals everything of the group (WithSuite)
	keys     *logKeys     // derived from replKey: seal metadata payloads and envelope epochs
	joining  *pendingJoin // set between OpenInvitation and CompleteJoin
	changed  chan struct{}
	// knownKind is the kind the group was opened with (0 on a replication
	// node, which learns it from the log into kind).
	knownKind Kind

	// The membership (fold.go): the decoded metadata entries in total
	// order, the states of both passes at their end, and the filter pass 0
	// defines. state is the final one (s2, or s1 while nothing is removed).
	items       []*metaItem
	s1, s2      *metaState
	filter      filter
	state       *metaState
	metaVersion uint64 // counts state updates
	// inflight holds the decoded entries of a join being committed, or of
	// an append, for the access check.
	inflight map[string]*metaItem
	// admitted is what the admitted metadata entries establish for the
	// admission of others; pending, what the join being committed
	// approved so far (access.go).
	admitted *admission
	pending  *admission
	secrets  map[EpochID]*[32]byte
	hkCache  map[EpochID]*[32]byte // header keys derived from secrets
	reported map[string]bool
	// sharedAt is, per epoch, the metaVersion at which this device last
	// made sure every member had its sending chain.
	sharedAt map[EpochID]uint64

	sendChains  map[EpochID]*crypto.SendingChain
	recvChains  map[chainRef]*crypto.ReceivingChain
	seen        map[msgRef]string
	delivered   map[string]*Message
	final       map[string]bool
	pendingMsgs map[string]*log.Entry
	// unstored are delivered messages whose readable copy could not be
	// written yet: retried with the next round and by SaveKeys, which
	// saves no key while any is left (see storeDelivered).
	unstored []*Message
	stats    map[crypto.PublicKey]*writerStats

	kv       log.KV   // where delivered messages are kept, sealed
	localKey [32]byte // seals them; saved with the keys
	// changes counts what changes the delivery state (messages decided,
	// sent, waiting); savedChanges is its value when the keys were last
	// saved (keysSaved): Close writes a delivery summary only when they
	// match (summary.go).
	changes      uint64
	savedChanges uint64
	keysSaved    bool

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
}

// MetaLogID and MessagesLogID return the log ids of a group's two logs.
//
// A log id is written into every entry, and entries are public IPFS blocks:
// it is a short hash (22 characters) so it neither reveals the group's
// public key nor costs more than a few bytes per entry.
func MetaLogID(group crypto.PublicKey) string { return logID(group, metaLogSuffix) }

// MessagesLogID returns the id of the group's message log.
func MessagesLogID(group crypto.PublicKey) string { return logID(group, messagesLogSuffix) }

func logID(group crypto.PublicKey, suffix string) string {
	h := sha256.New()
	h.Write([]byte(logIDPrefix))
	h.Write(group[:])
	h.Write([]byte(suffix))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

func openGroup(ctx context.Context, id *Identity, kind Kind, groupPub crypto.PublicKey, groupKey *crypto.SigningKey, st Storage, opts []Option) (*Group, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	if st.Blocks == nil || st.KV == nil {
		return nil, errors.New("storage needs a block store and a kv")
	}
	cfg := config{logger: slog.New(slog.DiscardHandler), window: crypto.DefaultRatchetWindow, suite: crypto.DefaultSuite()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("group option: %w", err)
		}
	}
	g := &Group{
		id: groupPub, kind: kind, groupKey: groupKey, me: id,
		logger:    cfg.logger.With("group", groupPub.Fingerprint()),
		window:    cfg.window,
		suite:     cfg.suite,
		knownKind: kind,
		s1:        newMetaState(),
		admitted:  newAdmission(),
		pending:   newAdmission(),
		secrets:   map[EpochID]*[32]byte{},
		hkCache:   map[EpochID]*[32]byte{},
		reported:  map[string]bool{},
		sharedAt:  map[EpochID]uint64{},

		sendChains:  map[EpochID]*crypto.SendingChain{},
		recvChains:  map[chainRef]*crypto.ReceivingChain{},
		seen:        map[msgRef]string{},
		delivered:   map[string]*Message{},
		final:       map[string]bool{},
		pendingMsgs: map[string]*log.Entry{},
		stats:       map[crypto.PublicKey]*writerStats{},
		subs:        map[*subscriber]struct{}{},
		changed:     make(chan struct{}),
		kv:          st.KV,
		localKey:    crypto.RandomKey(),
	}
	g.state = g.s1
	hexID := hex.EncodeToString(groupPub[:])
	signer := id.signer()
	var err error
	g.meta, err = log.Open(ctx, MetaLogID(groupPub), st.Blocks, st.KV, signer, metaAccess{g},
		append(slices.Clone(cfg.logOpts), log.WithKeyPrefix([]byte("group/"+hexID+"/meta/")))...)
	if err != nil {
		return nil, fmt.Errorf("open group %s: %w", groupPub.Fingerprint(), err)
	}
	msgOpts := append(slices.Clone(cfg.logOpts), log.WithKeyPrefix([]byte("group/"+hexID+"/messages/")))
	if cfg.msgOrder != nil {
		msgOpts = append(msgOpts, log.WithOrder(cfg.msgOrder))
	}
	g.msgs, err = log.Open(ctx, MessagesLogID(groupPub), st.Blocks, st.KV, signer, msgAccess{g}, msgOpts...)
	if err != nil {
		_ = g.meta.Close()
		return nil, fmt.Errorf("open group %s: %w", groupPub.Fingerprint(), err)
	}
	return g, nil
}

// Create creates a new multi-member group with this device as its first
// member and returns it. Invite others with Invite.
func Create(ctx context.Context, id *Identity, st Storage, opts ...Option) (*Group, error) {
	gk, err := crypto.GenerateSigningKey()
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	secret := crypto.RandomKey()
	g, err := openGroup(ctx, id, KindMulti, gk.Public(), gk, st, opts)
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	if err := g.found(ctx, []crypto.PublicKey{id.AccountKey()}, secret); err != nil {
		g.Close()
		return nil, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// CreateAccountGroup creates (or, on another device of the same account,
// re-derives and joins) the account's own group. The group key and genesis
// secret are derived from the account key, so id.Account is required.
// Devices without the account key join with an invitation instead.
func CreateAccountGroup(ctx context.Context, id *Identity, st Storage, opts ...Option) (*Group, error) {
	if id == nil || id.Account == nil {
		return nil, fmt.Errorf("create account group: %w: the account key is needed", ErrNotMember)
	}
	seed, secret, err := accountGroupKeys(id.Account)
	if err != nil {
		return nil, fmt.Errorf("create account group: %w", err)
	}
	gk, err := crypto.NewSigningKeyFromSeed(seed[:])
	clear(seed[:])
	if err != nil {
		return nil, fmt.Errorf("create account group: %w", err)
	}
	g, err := openGroup(ctx, id, KindAccount, gk.Public(), gk, st, opts)
	if err != nil {
		return nil, fmt.Errorf("create account group: %w", err)
	}
	if err := g.found(ctx, []crypto.PublicKey{id.AccountKey()}, secret); err != nil {
		g.Close()
		return nil, fmt.Errorf("create account group: %w", err)
	}
	return g, nil
}

// found writes this device's group-created (unless it already did) and
// device-added entries, authorized by the group key.
func (g *Group) found(ctx context.Context, accounts []crypto.PublicKey, secret [32]byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.secrets[GenesisEpoch] = &secret
	if g.replKey == nil {
		k, err := replicationKey(g.id, &secret)
		if err != nil {
			return err
		}
		if err := g.setReplicationKey(k); err != nil {
			return err
		}
	}
	if _, err := g.rebuild(ctx); err != nil {
		return err
	}
	me := g.me.DeviceKey()
	if g.state.device(me) == nil {
		sig, err := g.groupKey.Sign(domainGroupCreated, groupCreatedMessage(g.id, g.kind, accounts, me))
		if err != nil {
			return err
		}
		if err := g.appendMeta(ctx, &MetaPayload{Type: MetaGroupCreated, Kind: g.kind, Accounts: accounts, GroupSig: sig}); err != nil {
			return err
		}
		sig, err = g.groupKey.Sign(domainDeviceAdded, deviceAddedMessage(g.id, GenesisEpoch, AuthGroupKey, crypto.PublicKey{}, g.me.Cert))
		if err != nil {
			return err
		}
		if err := g.appendMeta(ctx, &MetaPayload{Type: MetaDeviceAdded, Epoch: GenesisEpoch, Cert: g.me.Cert, AuthType: AuthGroupKey, AuthSig: sig}); err != nil {
			return err
		}
	}
	return nil
}

// setReplicationKey sets the group's replication key and the keys derived
// from it; g.mu is held (or the group is not shared yet).
func (g *Group) setReplicationKey(k [32]byte) error {
	keys, err := deriveLogKeys(g.suite, g.id, &k)
	if err != nil {
		return err
	}
	g.replKey, g.keys = &k, keys
	return nil
}

// appendMeta seals and appends a metadata entry and applies it.
func (g *Group) appendMeta(ctx context.Context, p *MetaPayload) error {
	b, err := sealMeta(g.keys, g.id, g.me.DeviceKey(), p)
	if err != nil {
		return fmt.Errorf("append %s: %w", p.Type, err)
	}
	g.pending = newAdmission()
	g.inflight = nil
	e, err := g.meta.Append(ctx, b)
	if err != nil {
		g.inflight = nil
		return fmt.Errorf("append %s: %w", p.Type, err)
	}
	rs := g.addItems(g.takeItems([]*log.Entry{e}))
	// The access check passed, but the entry can still be refused when
	// applied in total order (e.g. an invitation another account used).
	for _, r := range rs {
		if r.CID.Equals(e.CID()) {
			return fmt.Errorf("%s refused: %w", p.Type, r.Err)
		}
	}
	return nil
}

// Suite returns the crypto suite the group seals with.
func (g *Group) Suite() crypto.Suite { return g.suite }

// headerKey returns the header key of epoch e, derived once.
func (g *Group) headerKey(e EpochID, secret *[32]byte) *[32]byte {
	if k := g.hkCache[e]; k != nil {
		return k
	}
	k := headerKey(g.id, secret)
	g.hkCache[e] = &k
	return &k
}

// ID returns the group's public key, its identifier.
func (g *Group) ID() crypto.PublicKey { return g.id }

// Kind returns the group kind (0 on a replication node that has not yet
// received the group-created entry).
func (g *Group) Kind() Kind {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.kind
}

// Replicate opens a group's logs as a replication node: it knows only the
// group's public key and its replication key (which opens the metadata
// payloads and the envelopes' epochs, and nothing that reads a message),
// checks every entry with the same write-access rules as the members
// (signatures, certificates, membership, epochs; removals take effect in
// the membership state, not at admission), stores and serves what passes,
// and reads no message. Use Receive and Heads; Send, Invite and the rest
// fail with ErrNotMember.
func Replicate(ctx context.Context, group crypto.PublicKey, replicationKey [32]byte, st Storage, opts ...Option) (*Group, error) {
	// The logs need a signer; a throwaway device that is never added.
	id, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	g, err := openGroup(ctx, id, 0, group, nil, st, opts)
	if err != nil {
		return nil, fmt.Errorf("replicate group %s: %w", group.Fingerprint(), err)
	}
	g.mu.Lock()
	g.replica = true
	if err = g.setReplicationKey(replicationKey); err == nil {
		_, err = g.rebuild(ctx)
	}
	g.mu.Unlock()
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("replicate group %s: %w", group.Fingerprint(), err)
	}
	return g, nil
}

// Heads returns the heads of both logs, for announcing to other replicas.
func (g *Group) Heads() Heads {
	return Heads{Meta: g.meta.Heads(), Messages: g.msgs.Heads()}
}

// Epoch returns the group's latest epoch.
func (g *Group) Epoch() EpochID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state.latestEpoch()
}

// Members returns the member accounts (not removed) and their devices,
// sorted by key.
func (g *Group) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	byAcct := map[crypto.PublicKey][]crypto.PublicKey{}
	for _, c := range g.state.devices {
		if !g.state.gone(c) {
			byAcct[c.Account] = append(byAcct[c.Account], c.Device)
		}
	}
	out := make([]Member, 0, len(byAcct))
	for a, ds := range byAcct {
		slices.SortFunc(ds, func(x, y crypto.PublicKey) int { return compareKeys(x, y) })
		out = append(out, Member{Account: a, Devices: ds})
	}
	slices.SortFunc(out, func(x, y Member) int { return compareKeys(x.Account, y.Account) })
	return out
}

func compareKeys(a, b crypto.PublicKey) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// Invite registers a new invitation key in the metadata log and returns
// the invitation for the current epoch. It is valid for one account (any
// number of its devices) until the next rekey.
func (g *Group) Invite(ctx context.Context) (*Invitation, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return nil, fmt.Errorf("invite to group %s: %w", g.id.Fingerprint(), err)
	}
	e, err := g.currentEpoch(ctx)
	if err != nil {
		return nil, fmt.Errorf("invite to group %s: %w", g.id.Fingerprint(), err)
	}
	ik, err := crypto.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	if err := g.appendMeta(ctx, &MetaPayload{Type: MetaInvitationCreated, Epoch: e, InviteKey: ik.Public()}); err != nil {
		return nil, fmt.Errorf("invite to group %s: %w", g.id.Fingerprint(), err)
	}
	inv := &Invitation{Kind: g.kind, Group: g.id, Epoch: e, Secret: *g.secrets[e], ReplicationKey: *g.replKey}
	if n := g.suite.Name(); n != crypto.DefaultSuite().Name() {
		inv.Suite = n
	}
	seed := ik.Seed()
	copy(inv.InviteSeed[:], seed)
	clear(seed)
	if g.kind == KindAccount && g.groupKey != nil {
		inv.GroupSeed = g.groupKey.Seed()
	}
	return inv, nil
}

// CheckInvitation returns an error wrapping ErrWrongGroup if inv is for
// another group.
func (g *Group) CheckInvitation(inv *Invitation) error {
	if inv == nil || !inv.Group.Equal(g.id) {
		other := "<nil>"
		if inv != nil {
			other = inv.Group.Fingerprint()
		}
		return fmt.Errorf("invitation for group %s: %w %s", other, ErrWrongGroup, g.id.Fingerprint())
	}
	return nil
}

// Join joins the group of an invitation: it opens the group's logs in st,
// receives the inviter's heads (from peer from), checks that the
// invitation is registered there, and writes this device's device-added
// entry authorized by the invitation key. Heads of another group's logs, a
// revoked or unknown invitation key, or a device whose certificate does
// not verify are errors; nothing is written then.
func Join(ctx context.Context, id *Identity, inv *Invitation, st Storage, from string, heads Heads, opts ...Option) (*Group, error) {
	g, err := OpenInvitation(ctx, id, inv, st, opts...)
	if err != nil {
		return nil, err
	}
	if err := g.joinWith(ctx, from, heads); err != nil {
		g.Close()
		return nil, fmt.Errorf("join group %s: %w", inv.Group.Fingerprint(), err)
	}
	return g, nil
}

// pendingJoin is what CompleteJoin needs: the invitation and its key.
type pendingJoin struct {
	inv *Invitation
	ik  *crypto.SigningKey
}

// OpenInvitation is the first half of a join that replication drives: it
// opens the group of inv with the invitation's epoch secret and
// replication key and nothing else. Replicate its logs (MetaLog,
// MessageLog, on ReplicationKey) so the members' heads arrive, then call
// CompleteJoin until it succeeds; Changed signals each change of the
// membership state in between. Send, Invite and the rest fail with
// ErrNotMember until then. Join does both halves with heads in hand.
func OpenInvitation(ctx context.Context, id *Identity, inv *Invitation, st Storage, opts ...Option) (*Group, error) {
	if inv == nil {
		return nil, fmt.Errorf("join group: %w: nil invitation", ErrTokenMalformed)
	}
	var gk *crypto.SigningKey
	if inv.GroupSeed != nil {
		k, err := crypto.NewSigningKeyFromSeed(inv.GroupSeed)
		if err != nil || !k.Public().Equal(inv.Group) {
			return nil, fmt.Errorf("join group %s: %w: group seed does not match", inv.Group.Fingerprint(), ErrTokenMalformed)
		}
		gk = k
	}
	ik, err := crypto.NewSigningKeyFromSeed(inv.InviteSeed[:])
	if err != nil {
		return nil, fmt.Errorf("join group %s: %w", inv.Group.Fingerprint(), err)
	}
	g, err := openGroup(ctx, id, inv.Kind, inv.Group, gk, st, append(slices.Clone(opts), groupSuite(inv.SuiteName())))
	if err != nil {
		return nil, fmt.Errorf("join group %s: %w", inv.Group.Fingerprint(), err)
	}
	if err := g.prepareJoin(ctx, inv, ik); err != nil {
		g.Close()
		return nil, fmt.Errorf("join group %s: %w", inv.Group.Fingerprint(), err)
	}
	return g, nil
}

func (g *Group) prepareJoin(ctx context.Context, inv *Invitation, ik *crypto.SigningKey) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	secret := inv.Secret
	g.secrets[inv.Epoch] = &secret
	if err := g.setReplicationKey(inv.ReplicationKey); err != nil {
		return err
	}
	g.joining = &pendingJoin{inv: inv, ik: ik}
	// The storage may already hold entries of this group's logs: an earlier
	// join that stopped short (the heads lacked the invitation, or a fetch
	// came back partial) committed what it verified before failing. Those
	// entries are never fetched again (core/log skips what it has), so the
	// state must be rebuilt from them first; otherwise the access checks of
	// the new entries would judge them against an empty membership and
	// refuse them, on every retry.
	if g.meta.Len() > 0 {
		if _, err := g.rebuild(ctx); err != nil {
			return err
		}
	}
	return nil
}

// joinWith receives the heads a member gave and completes the join.
func (g *Group) joinWith(ctx context.Context, from string, heads Heads) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.receive(ctx, from, heads); err != nil {
		var re *RejectedError
		if !errors.As(err, &re) {
			return err
		}
		for _, r := range re.Rejections {
			if errors.Is(r.Err, log.ErrWrongLog) {
				return fmt.Errorf("%w: peer %q sent heads of another group's log: %v", ErrWrongGroup, from, r.Err)
			}
		}
		g.logger.Warn("entries refused while joining", "err", err)
	}
	return g.completeJoin(ctx)
}

// CompleteJoin is the second half of a join begun with OpenInvitation: once
// the replicated metadata log holds the group's creation and the
// invitation, it writes this device's device-added entry, authorized by the
// invitation key. (Its sending chain is shared when it first sends.) Until the entries
// have arrived it returns an error wrapping ErrWrongGroup (no group-created
// yet) or ErrInvitationUnknown (the invitation not registered yet): call it
// again after Changed fires. An invitation revoked by a rekey gives
// ErrInvitationRevoked, which is final. On a group that is not joining it
// does nothing.
func (g *Group) CompleteJoin(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.joining == nil {
		return nil
	}
	if err := g.completeJoin(ctx); err != nil {
		return fmt.Errorf("join group %s: %w", g.id.Fingerprint(), err)
	}
	return nil
}

func (g *Group) completeJoin(ctx context.Context) error {
	inv, ik := g.joining.inv, g.joining.ik
	if !g.state.created {
		return fmt.Errorf("%w: the metadata log received holds no group-created for this group", ErrWrongGroup)
	}
	if g.state.device(g.me.DeviceKey()) != nil {
		g.joining = nil // already a member (rejoin of this device)
		return nil
	}
	p := &MetaPayload{Type: MetaDeviceAdded, Epoch: inv.Epoch, Cert: g.me.Cert}
	signer := ik
	if g.groupKey != nil {
		p.AuthType, signer = AuthGroupKey, g.groupKey
	} else {
		p.AuthType, p.InviteKey = AuthInvitation, ik.Public()
		if latest := g.state.latestEpoch(); inv.Epoch != latest {
			return fmt.Errorf("%w: the invitation is for epoch %s and was revoked by the rekey to epoch %s; ask for a new one",
				ErrInvitationRevoked, inv.Epoch, latest)
		}
		if ii := g.state.invites[p.InviteKey]; ii == nil || ii.epoch != inv.Epoch {
			return fmt.Errorf("%w: key %s is not registered in epoch %s (revoked by a rekey, for another group, or not replicated here yet)",
				ErrInvitationUnknown, p.InviteKey.Fingerprint(), inv.Epoch)
		}
	}
	if g.state.epochs[inv.Epoch] == nil {
		return fmt.Errorf("%w: the invitation's epoch %s", ErrUnknownEpoch, inv.Epoch)
	}
	sig, err := signer.Sign(domainDeviceAdded, deviceAddedMessage(g.id, inv.Epoch, p.AuthType, p.InviteKey, g.me.Cert))
	if err != nil {
		return err
	}
	p.AuthSig = sig
	if err := g.appendMeta(ctx, p); err != nil {
		return err
	}
	g.joining = nil
	return nil
}

// Receive merges a remote replica's heads (announced by peer from): it
// joins the metadata log, applies what it added to the membership, joins
// the message log and opens what it can. It writes nothing: this device
// shares its chain with new members when it next sends. Entries that fail
// verification or access checks never
// enter; the error is then a *RejectedError listing each with its reason,
// and every good entry was still added and processed.
func (g *Group) Receive(ctx context.Context, from string, heads Heads) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	return g.receive(ctx, from, heads)
}

func (g *Group) receive(ctx context.Context, from string, heads Heads) error {
	var rejected []Rejection
	collect := func(logName string, res log.JoinResult, err error) error {
		for _, r := range res.Rejected {
			rejected = append(rejected, Rejection{Log: logName, CID: r.CID, From: r.From, Err: r.Err})
		}
		var je *log.JoinError
		if err != nil && !errors.As(err, &je) {
			return fmt.Errorf("receive from %q: %w", from, err)
		}
		if je != nil && je.Limit != nil {
			// Not a refusal of one entry: the rest is fetched by the next Receive.
			rejected = append(rejected, Rejection{Log: logName, From: from, Err: je.Limit})
		}
		return nil
	}
	if len(heads.Meta) > 0 {
		res, rs, err := g.joinMeta(ctx, heads.Meta, from, nil)
		if err := collect("meta", res, err); err != nil {
			return err
		}
		rejected = append(rejected, rs...)
	}
	var added []*log.Entry
	if len(heads.Messages) > 0 {
		res, err := g.msgs.Join(ctx, heads.Messages, from)
		if err := collect("messages", res, err); err != nil {
			return err
		}
		added = res.Added
	}
	rs, err := g.processAfterJoin(ctx, added, from)
	rejected = append(rejected, rs...)
	if err != nil {
		return err
	}
	if len(rejected) > 0 {
		return &RejectedError{Group: g.id.Fingerprint(), Rejections: rejected}
	}
	return nil
}

// processMessages decides the given new entries and retries the pending
// ones, in the log's total order.
func (g *Group) processMessages(added []*log.Entry, from string) []Rejection {
	todo := slices.Clone(added)
	for _, e := range g.pendingMsgs {
		todo = append(todo, e)
	}
	if len(todo) > 0 {
		g.changes++
	}
	slices.SortFunc(todo, func(a, b *log.Entry) int {
		if a.Time != b.Time {
			if a.Time < b.Time {
				return -1
			}
			return 1
		}
		if c := compareKeys(pub(a.Writer), pub(b.Writer)); c != 0 {
			return c
		}
		return slices.Compare(a.CID().Bytes(), b.CID().Bytes())
	})
	var (
		rejected  []Rejection
		delivered []*Message
	)
	for _, e := range todo {
		k := e.CID().KeyString()
		if g.final[k] {
			delete(g.pendingMsgs, k)
			continue
		}
		msg, wait, err := g.openMessage(e)
		switch {
		case wait:
			g.pendingMsgs[k] = e
			continue
		case errors.Is(err, ErrUnreadable):
			// A valid entry this device has no key for (sent before it
			// joined): not a refusal, nothing to report.
			g.logger.Debug("message not readable", "cid", e.CID().String(), "err", err)
		case err != nil:
			rejected = append(rejected, Rejection{Log: "messages", CID: e.CID(), From: from, Err: err})
			g.logger.Warn("message refused", "cid", e.CID().String(), "err", err)
		default:
			g.delivered[k] = msg
			delivered = append(delivered, msg)
		}
		g.final[k] = true
		delete(g.pendingMsgs, k)
	}
	// Subscribers get the messages first, then their readable copies go
	// in one synced batch (the group held throughout, so SaveKeys cannot
	// save the keys that opened them before the copies are durable): a
	// message is not held up by an fsync on its way to the app. A crash
	// before the batch is durable loses the copies but not the message:
	// its entry is in the log and the keys saved predate it, so it is
	// opened and delivered again after the restart (at least once).
	metrics.MessagesDelivered.Add(float64(len(delivered)))
	for _, m := range delivered {
		g.notify(m)
	}
	g.storeDelivered(delivered)
	return rejected
}

// storeDelivered writes the readable copies of delivered messages, with
// those a failed write left behind. If the write fails again they stay in
// memory (delivered, listed, handed to subscribers) and SaveKeys refuses
// to save keys: the receiving chains on disk then predate these messages,
// and after a crash the entries, still in the log without a copy, are
// opened again. Saving the advanced chains first would lose them: their
// keys are used once. g.mu is held.
func (g *Group) storeDelivered(delivered []*Message) {
	todo := slices.Concat(g.unstored, delivered)
	if len(todo) == 0 {
		return
	}
	if err := g.storeLocal(context.Background(), todo...); err != nil {
		g.unstored = todo
		g.logger.Error("store delivered messages; kept in memory, retried, and no keys saved until then",
			"messages", len(todo), "err", err)
		return
	}
	g.unstored = nil
}

// openMessage checks and opens one message entry. wait is true when a key
// it needs (epoch secret or the sender's chain key) may still arrive.
func (g *Group) openMessage(e *log.Entry) (msg *Message, wait bool, err error) {
	cm, err := g.checkMessage(e)
	if err != nil {
		return nil, false, err
	}
	if cm.header == nil {
		// No secret for this epoch. Only the latest epoch can still be
		// shared with this device (rekeys seal to current devices only).
		if cm.epoch != g.state.latestEpoch() || g.state.member(cm.epoch, g.me.DeviceKey()) {
			return nil, false, fmt.Errorf("%w: no secret for epoch %s", ErrUnreadable, cm.epoch)
		}
		return nil, true, nil
	}
	h, env, epoch := cm.header, cm.env, cm.epoch
	w := h.Sender
	s := g.stats[w]
	if s == nil {
		s = &writerStats{limits: map[EpochID]uint64{}}
		g.stats[w] = s
	}
	s.maxTime = max(s.maxTime, e.Time)
	s.limits[epoch] = max(s.limits[epoch], h.Index+1)

	ref := msgRef{sender: w, epoch: epoch, index: h.Index}
	k := e.CID().KeyString()
	if prior, ok := g.seen[ref]; ok && prior != k {
		return nil, false, fmt.Errorf("%w: sender %s epoch %s index %d already delivered", ErrReplay, w.Fingerprint(), epoch, h.Index)
	}
	if w.Equal(g.me.DeviceKey()) {
		return nil, false, fmt.Errorf("%w: own message %d whose key this device no longer has", ErrUnreadable, h.Index)
	}
	cref := chainRef{sender: w, epoch: epoch}
	rc := g.recvChains[cref]
	if rc == nil {
		share, ok := g.state.myChains[cref]
		if !ok {
			return nil, true, nil
		}
		rc, err = crypto.NewReceivingChain(share.key, share.start, crypto.WithWindow(g.window))
		if err != nil {
			return nil, false, err
		}
		g.recvChains[cref] = rc
	}
	mk, err := rc.KeyFor(h.Index)
	switch {
	case errors.Is(err, crypto.ErrKeyUsed):
		return nil, false, fmt.Errorf("%w: %v", ErrReplay, err)
	case err != nil:
		return nil, false, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	g.seen[ref] = k
	body, err := g.suite.OpenOnce(&mk, env.Body, bodyAD(g.id, epoch, w, h.Index))
	clear(mk[:])
	if err != nil {
		return nil, false, fmt.Errorf("%w: body of message %d by %s: %v", ErrTampered, h.Index, w.Fingerprint(), err)
	}
	acct, _ := g.state.accountOf(w)
	return &Message{CID: e.CID(), Sender: w, Account: acct, Epoch: epoch, Index: h.Index,
		SentAt: time.UnixMilli(h.SentAt), Time: e.Time, Body: body}, false, nil
}

func (g *Group) usable() error {
	if g.closed {
		return ErrClosed
	}
	if g.replica {
		return fmt.Errorf("%w: a replication node holds no keys", ErrNotMember)
	}
	if g.left {
		return fmt.Errorf("%w: this device left the group", ErrRemoved)
	}
	if a := g.me.AccountKey(); g.state.isRemoved(a) {
		return fmt.Errorf("%w: this account was removed from the group", ErrRemoved)
	}
	if c := g.state.device(g.me.DeviceKey()); c != nil && g.state.gone(c) {
		return fmt.Errorf("%w: this device was removed from its account", ErrRemoved)
	}
	return nil
}

// currentEpoch returns the epoch this device sends in: the latest epoch,
// after a rekey if its secret reached a removed device.
func (g *Group) currentEpoch(ctx context.Context) (EpochID, error) {
	st := g.state
	e := st.latestEpoch()
	me := g.me.DeviceKey()
	if !st.member(e, me) || g.secrets[e] == nil {
		return e, fmt.Errorf("%w: this device is not in epoch %s", ErrNotMember, e)
	}
	if st.tainted(e) {
		if err := g.rekey(ctx, nil); err != nil {
			return e, err
		}
		e = g.state.latestEpoch()
	}
	return e, nil
}

// shareChain makes sure every active member device of epoch e holds this
// device's sending chain of e, before it sends in e. Shares are lazy and
// batched: one chain-keys entry (or one per maxShares devices) covers every
// device that lacks the chain, whenever they joined; a device that never
// sends never shares. A device that joined before this one sends reads
// from that message on. (Sharing on every join cost each member one entry
// per join: N² entries for N joins.)
//
// A chain-keys entry of this device that is not in the state (a rewind
// made its writer's membership differ, or it was refused) is not counted,
// so the devices it named get another share: the receiver keeps the first
// share of a chain in total order, and any share of one chain derives the
// same message keys from its start index on.
func (g *Group) shareChain(ctx context.Context, e EpochID) error {
	st := g.state
	me := g.me.DeviceKey()
	chain := g.sendChains[e]
	if chain == nil {
		if len(st.shared[e]) > 0 {
			// This device shared a chain of e that it no longer has (keys
			// not saved before a crash): members would read its messages
			// with the old chain. A fresh epoch gets a fresh chain.
			if err := g.rekey(ctx, nil); err != nil {
				return err
			}
			return errChainLost
		}
		chain = crypto.NewSendingChain(crypto.RandomKey(), 0)
		g.sendChains[e] = chain
	} else if g.sharedAt[e] == g.metaVersion {
		return nil // no metadata entry since every member had it
	}
	done := st.shared[e]
	var recipients []*crypto.DeviceCertificate
	for d := range st.epochs[e].members {
		c := st.devices[d]
		if c != nil && c.Device != me && !st.gone(c) && done[d] == 0 {
			recipients = append(recipients, c)
		}
	}
	slices.SortFunc(recipients, func(a, b *crypto.DeviceCertificate) int { return compareKeys(a.Device, b.Device) })
	next, ck := chain.Share()
	defer clear(ck[:])
	pt := append(u64(next), ck[:]...)
	defer clear(pt)
	for len(recipients) > 0 {
		batch := recipients[:min(len(recipients), maxShares)]
		recipients = recipients[len(batch):]
		p, err := sealShares(g.suite, MetaChainKeys, e, batch, pt, func(r crypto.PublicKey) []byte { return chainKeyAD(g.id, e, me, r) }, g.logger)
		if err != nil {
			return err
		}
		if len(p.Shares) == 0 {
			continue
		}
		if err := g.appendMeta(ctx, p); err != nil {
			return err
		}
	}
	g.sharedAt[e] = g.metaVersion
	return nil
}

// errChainLost makes Send start over in the epoch shareChain's rekey made.
var errChainLost = errors.New("sending chain lost: rekeyed")

// sealShares seals pt to each recipient device with one ephemeral key. A
// device whose agreement key cannot receive (a low-order point in its
// certificate) is skipped and logged: it could never open a share, and it
// must not stop the others from getting theirs.
func sealShares(suite crypto.Suite, t MetaType, e EpochID, recipients []*crypto.DeviceCertificate, pt []byte,
	ad func(crypto.PublicKey) []byte, logger *slog.Logger) (*MetaPayload, error) {
	ms, err := crypto.NewMultiSealerFor(suite)
	if err != nil {
		return nil, err
	}
	defer ms.Destroy()
	p := &MetaPayload{Type: t, Epoch: e, Ephemeral: ms.Ephemeral(), Shares: make([]Share, 0, len(recipients))}
	for _, r := range recipients {
		box, err := ms.SealTo(r.DeviceX25519, pt, ad(r.Device))
		if err != nil {
			logger.Warn("member device cannot receive shares: skipped", "device", r.Device.Fingerprint(), "err", err)
			continue
		}
		p.Shares = append(p.Shares, Share{Recipient: RecipientOf(r.Device), Box: box})
	}
	return p, nil
}

// Send seals body with this device's ratchet in the current epoch and
// appends it to the message log. If the current epoch's secret reached a
// device that has since been removed, Send first rekeys; if members lack
// this device's sending chain (they joined since it last sent), it first
// shares the chain with them.
//
// The group is held while the message is sealed and its entry signed, not
// while the entry is written: concurrent sends share one write (the log's
// group commit, log.BeginAppend). Send returns once it is durable.
func (g *Group) Send(ctx context.Context, body []byte) (*Message, error) {
	p, err := g.BeginSend(ctx, body)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// PendingSend is a message BeginSend has placed in the log but that may
// not be durable yet. Every PendingSend must be waited for: Wait is where
// a failed write is undone and where subscribers are told of the message.
type PendingSend struct {
	g   *Group
	msg *Message
	p   *log.Pending
}

// Message is the message as it will be delivered locally once written.
// Its CID and Lamport time are final.
func (p *PendingSend) Message() *Message { return p.msg }

// Wait returns the message once it is durable, or the error that kept it
// from being written (it is then not in the log). Sends begun earlier on
// the same group and waited for together share one write. ctx does not
// abandon the write.
func (p *PendingSend) Wait(ctx context.Context) (*Message, error) {
	g, msg := p.g, p.msg
	if err := p.p.Wait(ctx); err != nil {
		// Not written, so not in the log: not delivered either. (Its
		// ratchet index stays used.)
		g.mu.Lock()
		g.changes++
		k := msg.CID.KeyString()
		delete(g.delivered, k)
		delete(g.final, k)
		delete(g.seen, msgRef{sender: msg.Sender, epoch: msg.Epoch, index: msg.Index})
		g.mu.Unlock()
		return nil, fmt.Errorf("send to group %s: %w", g.id.Fingerprint(), err)
	}
	g.notify(msg)
	return msg, nil
}

// BeginSend is Send in two steps: it seals the message and appends its
// entry to the log in memory, and returns; Wait on the result returns once
// the entry is durable. The order of BeginSend calls is the order of the
// entries in the log (each builds on the one before), so a client that
// pipelines sends keeps its order without waiting for each write.
func (g *Group) BeginSend(ctx context.Context, body []byte) (*PendingSend, error) {
	msg, p, err := g.beginSend(ctx, body)
	if err != nil {
		return nil, err
	}
	return &PendingSend{g: g, msg: msg, p: p}, nil
}

// beginSend is Send up to writing the entry, under the group's lock.
func (g *Group) beginSend(ctx context.Context, body []byte) (*Message, *log.Pending, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return nil, nil, fmt.Errorf("send to group %s: %w", g.id.Fingerprint(), err)
	}
	e, err := g.currentEpoch(ctx)
	if err == nil {
		if err = g.shareChain(ctx, e); errors.Is(err, errChainLost) {
			if e, err = g.currentEpoch(ctx); err == nil {
				err = g.shareChain(ctx, e)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("send to group %s: %w", g.id.Fingerprint(), err)
	}
	me := g.me.DeviceKey()
	idx, mk := g.sendChains[e].Next()
	defer clear(mk[:])
	now := time.Now()
	h := Header{Sender: me, Index: idx, SentAt: now.UnixMilli()}
	sealedE, err := sealEpoch(g.keys, g.id, me, e)
	if err != nil {
		return nil, nil, err
	}
	hk := headerOnceKey(g.headerKey(e, g.secrets[e]), &sealedE)
	sealedH, err := g.suite.SealOnce(&hk, h.marshal(envelopeVersion), headerAD(g.id, e, me))
	clear(hk[:])
	if err != nil {
		return nil, nil, err
	}
	sealedB, err := g.suite.SealOnce(&mk, body, bodyAD(g.id, e, me, idx))
	if err != nil {
		return nil, nil, err
	}
	env, _ := (&Envelope{SealedEpoch: sealedE, Header: sealedH, Body: sealedB}).MarshalBinary()
	// The readable local copy is written in the same batch as the entry's
	// index: both are durable when Send returns, or neither is.
	var msg *Message
	entry, pending, err := g.msgs.BeginAppend(ctx, env, func(en *log.Entry) ([]log.KVOp, error) {
		msg = &Message{CID: en.CID(), Sender: me, Account: g.me.AccountKey(), Epoch: e, Index: idx,
			SentAt: time.UnixMilli(h.SentAt), Time: en.Time, Body: slices.Clone(body)}
		op, err := g.localOp(msg)
		if err != nil {
			return nil, err
		}
		return []log.KVOp{op}, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("send to group %s: %w", g.id.Fingerprint(), err)
	}
	g.changes++
	k := entry.CID().KeyString()
	g.delivered[k] = msg
	g.final[k] = true
	g.seen[msgRef{sender: me, epoch: e, index: idx}] = k
	s := g.stats[me]
	if s == nil {
		s = &writerStats{limits: map[EpochID]uint64{}}
		g.stats[me] = s
	}
	s.maxTime = max(s.maxTime, entry.Time)
	s.limits[e] = max(s.limits[e], idx+1)
	return msg, pending, nil
}

// cutoffsFor records what this device has seen of the devices of the
// given accounts: their latest entry times and ratchet indices.
func (g *Group) cutoffsFor(accounts []crypto.PublicKey) []Cutoff {
	var out []Cutoff
	for _, c := range g.state.devices {
		if !containsKey(accounts, c.Account) {
			continue
		}
		co := Cutoff{Device: c.Device, MetaTime: g.lastMetaTime(c.Device)}
		if s := g.stats[c.Device]; s != nil {
			co.MsgTime = s.maxTime
			for e, l := range s.limits {
				co.Limits = append(co.Limits, EpochLimit{Epoch: e, Limit: l})
			}
			slices.SortFunc(co.Limits, func(a, b EpochLimit) int { return slices.Compare(a.Epoch[:], b.Epoch[:]) })
		}
		out = append(out, co)
	}
	slices.SortFunc(out, func(a, b Cutoff) int { return compareKeys(a.Device, b.Device) })
	return out
}

// lastMetaTime returns the time of device d's last metadata entry this
// replica holds (that decodes): searched from the end, as a removal
// happens rarely and a member's last entry is usually recent.
func (g *Group) lastMetaTime(d crypto.PublicKey) uint64 {
	for i := len(g.items) - 1; i >= 0; i-- {
		if it := g.items[i]; it.writer == d && it.err == nil {
			return it.time
		}
	}
	return 0
}

// rekey starts a new epoch: a fresh secret sealed to every active device
// (after removing the given accounts), with cutoffs for the removed
// accounts' devices. Members share their sending chains of the new epoch
// when they next send.
func (g *Group) rekey(ctx context.Context, removed []crypto.PublicKey) error {
	return g.newEpoch(ctx, MetaRekey, removed, g.cutoffsFor(removed),
		func(c *crypto.DeviceCertificate) bool { return containsKey(removed, c.Account) })
}

// newEpoch writes a metadata entry of type t starting a new epoch: a fresh
// secret sealed to every active device that leave does not exclude, with
// removed and cutoffs recorded. g.mu is held.
func (g *Group) newEpoch(ctx context.Context, t MetaType, removed []crypto.PublicKey, cutoffs []Cutoff,
	leave func(*crypto.DeviceCertificate) bool) error {
	st := g.state
	parent := st.latestEpoch()
	me := g.me.DeviceKey()
	if !st.member(parent, me) {
		return fmt.Errorf("%w: this device is not in epoch %s", ErrNotMember, parent)
	}
	var id EpochID
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	var recipients []*crypto.DeviceCertificate
	for _, c := range st.devices {
		if !st.gone(c) && !leave(c) {
			recipients = append(recipients, c)
		}
	}
	if len(recipients) > maxShares {
		return fmt.Errorf("%w: %d member devices, a rekey reaches at most %d", ErrConflict, len(recipients), maxShares)
	}
	slices.SortFunc(recipients, func(a, b *crypto.DeviceCertificate) int { return compareKeys(a.Device, b.Device) })
	secret := crypto.RandomKey()
	p, err := sealShares(g.suite, t, parent, recipients, secret[:], func(r crypto.PublicKey) []byte { return epochSecretAD(g.id, id, me, r) }, g.logger)
	if err != nil {
		return err
	}
	p.NewEpoch, p.Removed, p.Cutoffs = id, removed, cutoffs
	g.secrets[id] = &secret
	if err := g.appendMeta(ctx, p); err != nil {
		delete(g.secrets, id)
		return err
	}
	return nil
}

// RemoveMember removes an account (all its devices) from the group: a new
// epoch starts whose secret and chain keys reach the remaining devices
// only, and entries the removed devices write past the recorded cutoffs
// are rejected everywhere. Any member may remove any other member.
func (g *Group) RemoveMember(ctx context.Context, account crypto.PublicKey) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return fmt.Errorf("remove member from group %s: %w", g.id.Fingerprint(), err)
	}
	if account.Equal(g.me.AccountKey()) {
		return fmt.Errorf("remove member from group %s: %w: cannot remove own account, use Leave", g.id.Fingerprint(), ErrConflict)
	}
	found := false
	for _, c := range g.state.devices {
		if c.Account.Equal(account) && !g.state.isRemoved(account) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("remove member %s from group %s: %w", account.Fingerprint(), g.id.Fingerprint(), ErrNotMember)
	}
	if err := g.rekey(ctx, []crypto.PublicKey{account}); err != nil {
		return fmt.Errorf("remove member %s from group %s: %w", account.Fingerprint(), g.id.Fingerprint(), err)
	}
	return nil
}

// Leave removes this device's account from the group. The next member to
// send rekeys, so this account reads nothing sent afterwards.
func (g *Group) Leave(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return fmt.Errorf("leave group %s: %w", g.id.Fingerprint(), err)
	}
	p := &MetaPayload{Type: MetaMemberLeft, Epoch: g.state.latestEpoch(), Cutoffs: g.cutoffsFor([]crypto.PublicKey{g.me.AccountKey()})}
	if err := g.appendMeta(ctx, p); err != nil {
		return fmt.Errorf("leave group %s: %w", g.id.Fingerprint(), err)
	}
	g.left = true
	return nil
}

// PutMetadata appends application metadata, sealed under the current
// epoch's metadata key.
func (g *Group) PutMetadata(ctx context.Context, data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return fmt.Errorf("put metadata in group %s: %w", g.id.Fingerprint(), err)
	}
	e, err := g.currentEpoch(ctx)
	if err != nil {
		return fmt.Errorf("put metadata in group %s: %w", g.id.Fingerprint(), err)
	}
	k := metaKey(g.id, g.secrets[e])
	sealed, err := g.suite.Seal(&k, data, appMetadataAD(g.id, e, g.me.DeviceKey()))
	if err != nil {
		return err
	}
	return g.appendMeta(ctx, &MetaPayload{Type: MetaAppMetadata, Epoch: e, Sealed: sealed})
}

// Metadata returns the application metadata records, in log order. Data
// is nil for a record of an epoch whose secret this device lacks; a record
// whose data does not open under its epoch's key (its writer sealed
// garbage) is left out and logged.
func (g *Group) Metadata() []AppMetadata {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]AppMetadata, 0, len(g.state.app))
	for _, it := range g.state.app {
		am := AppMetadata{Writer: it.writer, Epoch: it.epoch, CID: it.cid}
		mine := it.opened()
		if s := g.secrets[am.Epoch]; mine.app == nil && s != nil {
			k := metaKey(g.id, s)
			data, err := g.suite.Open(&k, it.p.Sealed, appMetadataAD(g.id, am.Epoch, it.writer))
			clear(k[:])
			mine.app = &openedApp{data: data, err: err}
			if err != nil {
				g.logger.Warn("application metadata does not open: left out", "cid", it.cid.String(), "err", err)
			}
		}
		if mine.app != nil {
			if mine.app.err != nil {
				continue
			}
			am.Data = mine.app.data
		}
		out = append(out, am)
	}
	return out
}

// ListOption selects the range and direction of Messages.
type ListOption func(*listOptions)

type listOptions struct {
	logOpts []log.IterOption
}

// Since lists messages after the message c (exclusive).
func Since(c cid.Cid) ListOption {
	return func(o *listOptions) { o.logOpts = append(o.logOpts, log.Since(c)) }
}

// Until lists messages before the message c (exclusive).
func Until(c cid.Cid) ListOption {
	return func(o *listOptions) { o.logOpts = append(o.logOpts, log.Until(c)) }
}

// Reverse lists from the newest message to the oldest.
func Reverse() ListOption {
	return func(o *listOptions) { o.logOpts = append(o.logOpts, log.Reverse()) }
}

// Messages lists the delivered messages in the log's total order (the same
// on every replica), within the range the options select. Entries this
// device could not open are skipped.
func (g *Group) Messages(ctx context.Context, opts ...ListOption) iter.Seq2[*Message, error] {
	var o listOptions
	for _, opt := range opts {
		opt(&o)
	}
	return func(yield func(*Message, error) bool) {
		// Collect first so the caller may call back into the group.
		// The log's order from its index alone: no entry block is read
		// (the delivered copies are in memory, or in the KV when they
		// were delivered before the group was opened).
		var cs []cid.Cid
		for c, err := range g.msgs.CIDs(ctx, o.logOpts...) {
			if err != nil {
				yield(nil, fmt.Errorf("list messages of group %s: %w", g.id.Fingerprint(), err))
				return
			}
			cs = append(cs, c)
		}
		// The first ones one by one (a caller that wants the newest few
		// reads a few copies), the rest in one go.
		first := min(len(cs), localQueryMin)
		for _, c := range cs[:first] {
			m, err := g.deliveredMsg(ctx, c)
			if err != nil {
				yield(nil, fmt.Errorf("list messages of group %s: %w", g.id.Fingerprint(), err))
				return
			}
			if m != nil && !yield(m, nil) {
				return
			}
		}
		out, err := g.deliveredMsgs(ctx, cs[first:])
		if err != nil {
			yield(nil, fmt.Errorf("list messages of group %s: %w", g.id.Fingerprint(), err))
			return
		}
		for _, m := range out {
			if m != nil && !yield(m, nil) {
				return
			}
		}
	}
}

// Close closes the group's logs and ends every subscription.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	g.subMu.Lock()
	for s := range g.subs {
		s.Stop()
		delete(g.subs, s)
	}
	g.subMu.Unlock()
	err := errors.Join(g.meta.Close(), g.msgs.Close())
	// The logs are flushed: what they hold is what the summary counts.
	g.mu.Lock()
	serr := g.writeSummary(context.Background())
	g.mu.Unlock()
	if serr != nil {
		// Not a loss: the next Open reads every delivered copy instead.
		g.logger.Warn("delivery summary not written", "err", serr)
	}
	return err
}

// localQueryMin is how many copies a listing reads from the KV one by one
// before it reads them all in one query instead (a store out of process
// answers each Get with a call of its own).
const localQueryMin = 256

// deliveredMsgs returns the delivered message of each of cs (nil where
// there is none), as deliveredMsg does.
func (g *Group) deliveredMsgs(ctx context.Context, cs []cid.Cid) ([]*Message, error) {
	out := make([]*Message, len(cs))
	var missing []int
	g.mu.Lock()
	for i, c := range cs {
		if out[i] = g.delivered[c.KeyString()]; out[i] == nil {
			missing = append(missing, i)
		}
	}
	kv := g.kv
	g.mu.Unlock()
	if kv == nil || len(missing) == 0 {
		return out, nil
	}
	if len(missing) < localQueryMin {
		for _, i := range missing {
			m, err := g.deliveredMsg(ctx, cs[i])
			if err != nil {
				return nil, err
			}
			out[i] = m
		}
		return out, nil
	}
	want := make(map[string]int, len(missing))
	for _, i := range missing {
		want[string(cs[i].Bytes())] = i
	}
	prefix := g.localPrefix()
	for p, err := range kv.Query(ctx, log.KVQuery{Prefix: prefix}) {
		if err != nil {
			return nil, fmt.Errorf("read delivered messages: %w", err)
		}
		i, ok := want[string(p.Key[len(prefix):])]
		if !ok {
			continue
		}
		g.mu.Lock()
		m, err := g.openLocal(p.Key[len(prefix):], p.Value)
		g.mu.Unlock()
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// deliveredMsg returns the delivered message of entry c: from memory if
// it was delivered since the group was opened, else its readable copy in
// the KV; nil if c was not delivered.
func (g *Group) deliveredMsg(ctx context.Context, c cid.Cid) (*Message, error) {
	g.mu.Lock()
	m := g.delivered[c.KeyString()]
	kv := g.kv
	g.mu.Unlock()
	if m != nil || kv == nil {
		return m, nil
	}
	key := append(g.localPrefix(), c.Bytes()...)
	sealed, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, log.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read delivered message %s: %w", c, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.openLocal(c.Bytes(), sealed)
}
