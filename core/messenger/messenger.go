package messenger

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/metrics"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

// recordPrefix is where the messenger keeps its list of groups in the store.
const recordPrefix = "messenger/group/"

// MaxGroupName bounds a group's local name.
const MaxGroupName = 64

// Config is what a Messenger runs on.
type Config struct {
	// Keystore holds the account, the device and every group's keys.
	// Required.
	Keystore *crypto.Keystore
	// Store holds the group logs' heads and indices, delivered messages
	// (sealed) and the list of groups. Required.
	Store sdk.Store
	// Network moves blocks and announcements. Required.
	Network sdk.Network
	// Replication configures the replicator (core/replication) that keeps
	// the groups' logs in sync over Network, e.g.
	// replication.WithAntiEntropyInterval; the messenger adds its logger.
	Replication []replication.Option
	// Logger; nil: discard.
	Logger *slog.Logger
	// GroupOptions are passed to every group opened.
	GroupOptions []group.Option
	// ReplicationNode, when set, makes this messenger a replication node:
	// it also stores and serves the groups members register with it
	// (RegisterProtocol), without being able to read them.
	ReplicationNode *ReplicationNodeConfig
}

// GroupInfo describes a group this node holds.
type GroupInfo struct {
	ID      crypto.PublicKey
	Name    string
	Kind    group.Kind
	Epoch   group.EpochID
	Members int
	Left    bool
}

type record struct {
	Name string `json:"name"`
	Left bool   `json:"left,omitempty"`
}

type held struct {
	g   *group.Group
	rec record
	// logs are the wire ids of the group's logs while replicated.
	logs []replication.LogID
}

// Messenger is a node's messaging service: the account and device from the
// keystore, the groups this device holds (persisted), and their
// replication. It is safe for concurrent use.
type Messenger struct {
	cfg    Config
	id     *group.Identity
	st     group.Storage
	repl   *replication.Replicator
	logger *slog.Logger

	unheldCache unheldCache

	mu       sync.Mutex
	groups   map[crypto.PublicKey]*held
	replicas map[crypto.PublicKey]*replicaHeld
	closed   bool
	regMu    sync.Mutex              // serialises registrations (replication node)
	wrong    map[string]wrongSecrets // wrong registration secrets, by peer

	// Keys are saved by one goroutine: a burst of sends and merges costs
	// one keystore write per group, not one per message (after a crash,
	// group.Open advances the sending chains past every index used).
	dirtyMu   sync.Mutex
	dirty     map[*group.Group]bool
	saveWake  chan struct{}
	saverStop chan struct{}
	saverDone chan struct{}

	book peerBook    // peers that share a group (peers.go)
	held heldBook    // own entries known held elsewhere (held.go)
	dev  deviceState // devices.go
}

// markDirty schedules g's keys to be saved.
func (m *Messenger) markDirty(g *group.Group) {
	m.dirtyMu.Lock()
	m.dirty[g] = true
	m.dirtyMu.Unlock()
	select {
	case m.saveWake <- struct{}{}:
	default:
	}
}

// saveDirty saves the keys of every group marked dirty.
func (m *Messenger) saveDirty() {
	m.dirtyMu.Lock()
	batch := m.dirty
	m.dirty = map[*group.Group]bool{}
	m.dirtyMu.Unlock()
	for g := range batch {
		m.mu.Lock()
		h := m.groups[g.ID()]
		m.mu.Unlock()
		if h == nil || h.g != g {
			continue // not held (a join still in progress, or closed)
		}
		if err := g.SaveKeys(m.cfg.Keystore); err != nil && !errors.Is(err, crypto.ErrClosed) {
			m.logger.Error("save group keys", "group", g.ID().Fingerprint(), "err", err)
		}
	}
}

// keySaveInterval spaces key saves: group.SaveKeys holds the group while
// the keystore writes (an fsync), so saving after every message would
// serialise sends behind the disk.
const keySaveInterval = 100 * time.Millisecond

func (m *Messenger) saver() {
	defer close(m.saverDone)
	for {
		select {
		case <-m.saverStop:
			return
		case <-m.saveWake:
			m.saveDirty()
		}
		select {
		case <-m.saverStop:
			return
		case <-time.After(keySaveInterval):
		}
	}
}

// New opens the messenger: it loads the identity from the keystore (creating
// a new account and device on first use), reopens every group saved in the
// store, and starts replicating them.
func New(ctx context.Context, cfg Config) (*Messenger, error) {
	if cfg.Keystore == nil || cfg.Store == nil || cfg.Network == nil {
		return nil, fmt.Errorf("new messenger: %w: keystore, store and network are required", ErrInvalidArgument)
	}
	m := &Messenger{
		cfg:    cfg,
		st:     group.Storage{Blocks: networkBlocks{cfg.Network}, KV: storeKV{cfg.Store}},
		logger: cfg.Logger,
		groups: map[crypto.PublicKey]*held{}, replicas: map[crypto.PublicKey]*replicaHeld{},
		wrong: map[string]wrongSecrets{},
		dirty: map[*group.Group]bool{}, saveWake: make(chan struct{}, 1),
		saverStop: make(chan struct{}), saverDone: make(chan struct{}),
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	id, created, err := loadIdentity(cfg.Keystore)
	if err != nil {
		return nil, fmt.Errorf("new messenger: %w", err)
	}
	if created {
		m.logger.Info("new account created", "account", id.AccountKey().Fingerprint(), "device", id.DeviceKey().Fingerprint())
	}
	m.id = id
	ropts := append([]replication.Option{replication.WithLogger(m.logger), replication.WithPeerSeen(m.peerSeen)}, cfg.Replication...)
	if v, ok := cfg.Network.(interface{ PubsubValidated() bool }); ok {
		ropts = append([]replication.Option{replication.WithPubsubValidated(v.PubsubValidated())}, ropts...)
	}
	repl, err := replication.New(cfg.Network, ropts...)
	if err != nil {
		return nil, fmt.Errorf("new messenger: %w", err)
	}
	m.startPeerBook()
	if err := repl.Start(ctx); err != nil {
		m.stopPeerBook()
		return nil, fmt.Errorf("new messenger: %w", err)
	}
	m.repl = repl
	go m.saver()
	if err := m.reopen(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("new messenger: %w", err)
	}
	if err := m.startDevices(); err != nil {
		m.Close()
		return nil, fmt.Errorf("new messenger: %w", err)
	}
	if cfg.ReplicationNode != nil {
		if err := m.startReplicationNode(ctx); err != nil {
			m.Close()
			return nil, fmt.Errorf("new messenger: %w", err)
		}
	}
	return m, nil
}

func (m *Messenger) opts() []group.Option {
	// Synced log writes: Send returns only once the entry's block, index
	// and heads are durable, so an acknowledged message survives kill -9.
	// The block goes into the store's synced batch with the index, and
	// into the network's blockstore after it (log.WithBlocksInKV): one
	// fsync per send, and no call to the network on the send's path.
	return append([]group.Option{group.WithLogger(m.logger),
		group.WithLogOptions(log.WithSyncWrites(true), log.WithBlocksInKV(true))}, m.cfg.GroupOptions...)
}

func (m *Messenger) reopen(ctx context.Context) error {
	for kv, err := range m.cfg.Store.Query(ctx, sdk.Query{Prefix: []byte(recordPrefix)}) {
		if err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		raw, err := hex.DecodeString(strings.TrimPrefix(string(kv.Key), recordPrefix))
		if err != nil {
			return fmt.Errorf("group record %q: %w", kv.Key, err)
		}
		gid, err := crypto.ParsePublicKey(raw)
		if err != nil {
			return fmt.Errorf("group record %q: %w", kv.Key, err)
		}
		var rec record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("group record %s: %w", gid.Fingerprint(), err)
		}
		g, err := group.Open(ctx, m.identity(), m.cfg.Keystore, gid, m.st, m.opts()...)
		if err != nil {
			return err
		}
		if err := m.hold(ctx, g, rec, false); err != nil {
			return err
		}
	}
	return nil
}

// hold registers g, persists its record and keys (when save), and starts
// replicating it.
func (m *Messenger) hold(ctx context.Context, g *group.Group, rec record, save bool) error {
	if save {
		if err := m.persist(ctx, g, rec); err != nil {
			return err
		}
	}
	return m.register(ctx, g, rec, nil)
}

// holdReplicated is hold for a group whose logs are replicated already
// (under ids): a group just joined.
func (m *Messenger) holdReplicated(ctx context.Context, g *group.Group, rec record, ids []replication.LogID) error {
	if err := m.persist(ctx, g, rec); err != nil {
		m.unreplicate(ids)
		g.Close()
		return err
	}
	return m.register(ctx, g, rec, ids)
}

// register makes g held under rec and replicates it (unless it was left),
// reusing ids if given.
func (m *Messenger) register(_ context.Context, g *group.Group, rec record, ids []replication.LogID) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.unreplicate(ids)
		g.Close()
		return ErrClosed
	}
	old := m.groups[g.ID()]
	h := &held{g: g, rec: rec, logs: ids}
	m.groups[g.ID()] = h
	m.mu.Unlock()
	if old != nil {
		m.unreplicate(old.logs)
		if old.g != g {
			old.g.Close()
		}
	}
	if !rec.Left && ids == nil {
		key, err := g.ReplicationKey()
		if err != nil {
			return err
		}
		ids, err := m.replicate(g, key, m.markDirty)
		if err != nil {
			return err
		}
		m.mu.Lock()
		h.logs = ids
		m.mu.Unlock()
	}
	return nil
}

func (m *Messenger) persist(ctx context.Context, g *group.Group, rec record) error {
	if err := g.SaveKeys(m.cfg.Keystore); err != nil {
		return err
	}
	b, _ := json.Marshal(rec)
	id := g.ID()
	if err := m.cfg.Store.Batch(ctx, []sdk.Op{{Key: []byte(recordPrefix + hex.EncodeToString(id[:])), Value: b}}, true); err != nil {
		return fmt.Errorf("save group %s: %w", id.Fingerprint(), err)
	}
	return nil
}

// Close stops replication, saves every group's keys and closes the groups.
func (m *Messenger) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	groups, replicas := m.groups, m.replicas
	m.groups, m.replicas = map[crypto.PublicKey]*held{}, map[crypto.PublicKey]*replicaHeld{}
	m.mu.Unlock()
	if dm, ok := m.cfg.Network.(sdk.DirectMessenger); ok && m.cfg.ReplicationNode != nil {
		_ = dm.HandleRequests(RegisterProtocol, nil)
	}
	m.stopDevices()
	close(m.saverStop)
	<-m.saverDone
	m.saveDirty()
	reach := make(map[crypto.PublicKey][]replication.LogID, len(groups))
	for gid, h := range groups {
		reach[gid] = h.logs
	}
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	m.saveReach(rctx, reach)
	cancel()
	errs := []error{m.repl.Close()}
	m.stopPeerBook()
	for _, h := range groups {
		errs = append(errs, h.g.SaveKeys(m.cfg.Keystore), h.g.Close())
	}
	for _, h := range replicas {
		errs = append(errs, h.g.Close())
	}
	return errors.Join(errs...)
}

// Identity returns this device's identity.
func (m *Messenger) Identity() *group.Identity { return m.identity() }

// Network returns the network the messenger runs on.
func (m *Messenger) Network() sdk.Network { return m.cfg.Network }

// checkName validates a local group name: short, printable, and not
// something that looks like an id prefix of another group.
func checkName(name string) error {
	if len(name) > MaxGroupName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: group name must be valid text of at most %d bytes without control characters", ErrInvalidArgument, MaxGroupName)
	}
	return nil
}

func (m *Messenger) info(h *held) GroupInfo {
	rec := m.recordOf(h)
	return GroupInfo{ID: h.g.ID(), Name: rec.Name, Kind: h.g.Kind(), Epoch: h.g.Epoch(), Members: len(h.g.Members()), Left: rec.Left}
}

// Resolve finds the group a reference names: its exact local name, or a
// unique prefix of its hex id.
func (m *Messenger) Resolve(ref string) (GroupInfo, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return GroupInfo{}, err
	}
	return m.info(h), nil
}

func (m *Messenger) resolve(ref string) (*held, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if ref == "" {
		return nil, fmt.Errorf("%w: empty group reference", ErrGroupNotFound)
	}
	var byName, byPrefix []*held
	lref := strings.ToLower(ref)
	for id, h := range m.groups {
		if h.rec.Name == ref {
			byName = append(byName, h)
		}
		if strings.HasPrefix(hex.EncodeToString(id[:]), lref) {
			byPrefix = append(byPrefix, h)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		return nil, fmt.Errorf("%w: %d groups are named %q; use an id prefix", ErrAmbiguous, len(byName), ref)
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byPrefix) > 1:
		return nil, fmt.Errorf("%w: %q is a prefix of %d group ids; give more characters", ErrAmbiguous, ref, len(byPrefix))
	}
	return nil, fmt.Errorf("%w: %q", ErrGroupNotFound, ref)
}

// Groups lists the groups this node holds, by name then id; the account
// group, which holds this account's devices, is listed by Devices
// instead.
func (m *Messenger) Groups() []GroupInfo {
	m.mu.Lock()
	hs := make([]*held, 0, len(m.groups))
	for _, h := range m.groups {
		if h.g.Kind() != group.KindAccount {
			hs = append(hs, h)
		}
	}
	m.mu.Unlock()
	out := make([]GroupInfo, 0, len(hs))
	for _, h := range hs {
		out = append(out, m.info(h))
	}
	slices.SortFunc(out, func(a, b GroupInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// CreateGroup creates a multi-member group with this account as its only
// member, under a local name.
func (m *Messenger) CreateGroup(ctx context.Context, name string) (GroupInfo, error) {
	if err := checkName(name); err != nil {
		return GroupInfo{}, err
	}
	g, err := group.Create(ctx, m.identity(), m.st, m.opts()...)
	if err != nil {
		return GroupInfo{}, err
	}
	rec := record{Name: name}
	if err := m.hold(ctx, g, rec, true); err != nil {
		return GroupInfo{}, err
	}
	m.logger.Info("group created", "group", g.ID().Fingerprint(), "name", name)
	gi := m.info(&held{g: g, rec: rec})
	m.announceGroup(ctx, gi) // device_sync.go
	return gi, nil
}

// Invite returns a new invitation to the group.
func (m *Messenger) Invite(ctx context.Context, ref string) (*group.Invitation, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	inv, err := h.g.Invite(ctx)
	if err != nil {
		return nil, err
	}
	m.markDirty(h.g) // the replicator announces the new entry by itself
	return inv, nil
}

// JoinGroup joins the group of an invitation token: it fetches the group's
// heads from a member reachable on the network (waiting until one is, or
// ctx ends), joins, and starts replicating.
func (m *Messenger) JoinGroup(ctx context.Context, token, name string) (GroupInfo, error) {
	gi, err := m.joinGroup(ctx, token, name)
	if err == nil {
		m.announceGroup(ctx, gi) // device_sync.go
	}
	return gi, err
}

func (m *Messenger) joinGroup(ctx context.Context, token, name string) (GroupInfo, error) {
	if err := checkName(name); err != nil {
		return GroupInfo{}, err
	}
	inv, err := group.ParseInvitation(strings.TrimSpace(token))
	if err != nil {
		return GroupInfo{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if h, err := m.resolve(hex.EncodeToString(inv.Group[:])); err == nil && !m.recordOf(h).Left {
		return m.info(h), nil // already held
	}
	g, err := group.OpenInvitation(ctx, m.identity(), inv, m.st, m.opts()...)
	if err != nil {
		return GroupInfo{}, err
	}
	// Replicate the group's logs so that the members' heads arrive (their
	// announcements, a head exchange with every connected peer, and the
	// anti-entropy), and complete the join once the metadata log holds the
	// invitation.
	ids, err := m.replicate(g, inv.ReplicationKey, m.markDirty)
	if err != nil {
		g.Close()
		return GroupInfo{}, err
	}
	if err := m.completeJoin(ctx, g); err != nil {
		m.unreplicate(ids)
		g.Close()
		return GroupInfo{}, err
	}
	rec := record{Name: name}
	if err := m.holdReplicated(ctx, g, rec, ids); err != nil {
		return GroupInfo{}, err
	}
	m.logger.Info("group joined", "group", g.ID().Fingerprint(), "name", name, "members", len(g.Members()))
	return m.info(&held{g: g, rec: rec}), nil
}

// completeJoin retries g.CompleteJoin as the group's metadata arrives,
// asking connected peers for heads again now and then, until it succeeds,
// fails for good, or ctx ends.
func (m *Messenger) completeJoin(ctx context.Context, g *group.Group) error {
	ask := 100 * time.Millisecond
	timer := time.NewTimer(ask)
	defer timer.Stop()
	for {
		changed := g.Changed()
		err := g.CompleteJoin(ctx)
		if err == nil {
			return nil
		}
		// Until the metadata log holds the group's creation and the
		// invitation, the members' heads have not arrived yet. A revoked
		// invitation is final.
		transient := (errors.Is(err, group.ErrInvitationUnknown) || errors.Is(err, group.ErrWrongGroup)) &&
			!errors.Is(err, group.ErrInvitationRevoked)
		if !transient {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (no member reachable had the invitation before: %w)", err, ctx.Err())
		case <-changed:
		case <-timer.C:
			if serr := m.repl.Sync(ctx); serr != nil {
				m.logger.Debug("joining: ask peers for heads", "group", g.ID().Fingerprint(), "err", serr)
			}
			ask = min(2*ask, 5*time.Second)
			timer.Reset(ask)
		}
	}
}

// Members lists the group's members.
func (m *Messenger) Members(ref string) ([]group.Member, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	return h.g.Members(), nil
}

// ResolveMember finds the member account a reference names: a unique
// prefix of its hex key or of its fingerprint.
func (m *Messenger) ResolveMember(ref, member string) (crypto.PublicKey, error) {
	ms, err := m.Members(ref)
	if err != nil {
		return crypto.PublicKey{}, err
	}
	member = strings.ToLower(strings.TrimSpace(member))
	if member == "" {
		return crypto.PublicKey{}, fmt.Errorf("%w: empty member reference", ErrMemberNotFound)
	}
	var found []crypto.PublicKey
	for _, mb := range ms {
		if strings.HasPrefix(mb.Account.String(), member) || strings.HasPrefix(strings.ToLower(mb.Account.Fingerprint()), member) {
			found = append(found, mb.Account)
		}
	}
	switch len(found) {
	case 0:
		return crypto.PublicKey{}, fmt.Errorf("%w: %q", ErrMemberNotFound, member)
	case 1:
		return found[0], nil
	}
	return crypto.PublicKey{}, fmt.Errorf("%w: %q matches %d members", ErrAmbiguous, member, len(found))
}

// RemoveMember removes a member account (named as ResolveMember accepts);
// the group moves to a new epoch the removed member cannot read.
func (m *Messenger) RemoveMember(ctx context.Context, ref, member string) (GroupInfo, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return GroupInfo{}, err
	}
	acct, err := m.ResolveMember(ref, member)
	if err != nil {
		return GroupInfo{}, err
	}
	if err := h.g.RemoveMember(ctx, acct); err != nil {
		return GroupInfo{}, err
	}
	m.markDirty(h.g)
	return m.info(h), nil
}

// Leave leaves the group: this device writes that it left, stops
// replicating it and keeps its history readable locally.
func (m *Messenger) Leave(ctx context.Context, ref string) error {
	h, err := m.resolve(ref)
	if err != nil {
		return err
	}
	if err := h.g.Leave(ctx); err != nil {
		return err
	}
	m.announceLeft(ctx, h.g.ID()) // device_sync.go
	m.mu.Lock()
	h.rec.Left = true
	rec, ids := h.rec, h.logs
	h.logs = nil
	m.mu.Unlock()
	// Announce the departure before replication stops.
	for _, id := range ids {
		if err := m.repl.Announce(ctx, id); err != nil {
			m.logger.Warn("announce leaving", "group", h.g.ID().Fingerprint(), "err", err)
		}
	}
	m.unreplicate(ids)
	return m.persist(ctx, h.g, rec)
}

// Send sends body to the group and returns the message as delivered
// locally.
func (m *Messenger) Send(ctx context.Context, ref string, body []byte) (*group.Message, error) {
	p, err := m.BeginSend(ctx, ref, body)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// PendingSend is a message BeginSend has placed in the group's log that
// may not be durable yet; it must be waited for.
type PendingSend struct {
	m *Messenger
	g *group.Group
	p *group.PendingSend
}

// Message is the message as it will be delivered once written (its CID
// and time are final).
func (p *PendingSend) Message() *group.Message { return p.p.Message() }

// Wait returns the message once it is durable, or why it was not written.
func (p *PendingSend) Wait(ctx context.Context) (*group.Message, error) {
	msg, err := p.p.Wait(ctx)
	if err != nil {
		return nil, err
	}
	metrics.MessagesSent.Inc()
	p.m.markDirty(p.g)
	return msg, nil
}

// BeginSend is Send in two steps (group.BeginSend): the message's place in
// the log is fixed when it returns, and Wait on the result returns once it
// is durable. Sends begun one after another keep their order.
func (m *Messenger) BeginSend(ctx context.Context, ref string, body []byte) (*PendingSend, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrInvalidArgument)
	}
	h, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	p, err := h.g.BeginSend(ctx, body)
	if err != nil {
		return nil, err
	}
	return &PendingSend{m: m, g: h.g, p: p}, nil
}

// ListOptions select messages for Messages.
type ListOptions struct {
	// Since: only messages after this entry (exclusive); Until: up to
	// this entry (inclusive). Undefined CIDs select no bound.
	Since, Until cid.Cid
	Reverse      bool
	// Limit: at most this many (0: all).
	Limit int
}

// Messages lists the group's delivered messages in its total order.
func (m *Messenger) Messages(ctx context.Context, ref string, o ListOptions) ([]*group.Message, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	var opts []group.ListOption
	if o.Since.Defined() {
		opts = append(opts, group.Since(o.Since))
	}
	if o.Until.Defined() {
		opts = append(opts, group.Until(o.Until))
	}
	if o.Reverse {
		opts = append(opts, group.Reverse())
	}
	var out []*group.Message
	for msg, err := range h.g.Messages(ctx, opts...) {
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
		if o.Limit > 0 && len(out) == o.Limit {
			break
		}
	}
	return out, nil
}

// Subscribe streams the group's messages as they are delivered until ctx
// ends.
func (m *Messenger) Subscribe(ctx context.Context, ref string) (<-chan *group.Message, GroupInfo, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return nil, GroupInfo{}, err
	}
	return h.g.Subscribe(ctx), m.info(h), nil
}

// ContactToken returns this account's contact token, showing name.
func (m *Messenger) ContactToken(name string) (string, error) {
	t, err := m.identity().ContactToken(name)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return t.Token(), nil
}

// AddContact reads a peer's contact token, opens the contact group and
// returns the request token the peer must accept.
func (m *Messenger) AddContact(ctx context.Context, token, name string) (string, GroupInfo, error) {
	t, err := group.ParseContactToken(strings.TrimSpace(token))
	if err != nil {
		return "", GroupInfo{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	req, g, err := group.RequestContact(ctx, m.identity(), t, name, m.st, m.opts()...)
	if err != nil {
		return "", GroupInfo{}, err
	}
	rec := record{Name: t.Name}
	if err := m.hold(ctx, g, rec, true); err != nil {
		return "", GroupInfo{}, err
	}
	gi := m.info(&held{g: g, rec: rec})
	m.announceGroup(ctx, gi) // device_sync.go
	return req.Token(), gi, nil
}

// AcceptContact reads a contact request and opens the contact group.
func (m *Messenger) AcceptContact(ctx context.Context, token string) (GroupInfo, error) {
	req, err := group.ParseContactRequest(strings.TrimSpace(token))
	if err != nil {
		return GroupInfo{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	g, err := group.AcceptContact(ctx, m.identity(), req, m.st, m.opts()...)
	if err != nil {
		return GroupInfo{}, err
	}
	rec := record{Name: req.Name}
	if err := m.hold(ctx, g, rec, true); err != nil {
		return GroupInfo{}, err
	}
	gi := m.info(&held{g: g, rec: rec})
	m.announceGroup(ctx, gi) // device_sync.go
	return gi, nil
}

// Peers lists the network's connected peers.
func (m *Messenger) Peers(ctx context.Context) ([]sdk.PeerInfo, error) {
	return m.cfg.Network.Peers(ctx)
}

// Connect dials the peer addr names: a multiaddr ending in /p2p/<peer id>,
// or a bare /p2p/<peer id> for the network to find. An address without a
// peer id, or naming this node, is ErrInvalidArgument; a peer that cannot
// be reached is ErrUnreachable.
func (m *Messenger) Connect(ctx context.Context, addr string) (sdk.PeerInfo, error) {
	addr = strings.TrimSpace(addr)
	i := strings.LastIndex(addr, "/p2p/")
	if i < 0 || i+len("/p2p/") == len(addr) || strings.Contains(addr[i+len("/p2p/"):], "/") {
		return sdk.PeerInfo{}, fmt.Errorf("%w: %q is not a multiaddr ending in /p2p/<peer id> (skein id prints them)", ErrInvalidArgument, addr)
	}
	info := sdk.PeerInfo{ID: addr[i+len("/p2p/"):]}
	if i > 0 {
		info.Addrs = []string{addr[:i]}
	}
	if info.ID == m.cfg.Network.PeerID() {
		return sdk.PeerInfo{}, fmt.Errorf("%w: %s is this node", ErrInvalidArgument, info.ID)
	}
	if err := m.cfg.Network.Connect(ctx, info); err != nil {
		return sdk.PeerInfo{}, fmt.Errorf("connect to %s: %w: %w", info.ID, ErrUnreachable, err)
	}
	return info, nil
}

// SyncStatus reports the sync state of the group ref names, or of every
// group when ref is "".
func (m *Messenger) SyncStatus(ctx context.Context, ref string) ([]SyncStatus, error) {
	var ids []crypto.PublicKey
	if ref != "" {
		h, err := m.resolve(ref)
		if err != nil {
			return nil, err
		}
		ids = append(ids, h.g.ID())
	} else {
		for _, gi := range m.Groups() {
			if !gi.Left {
				ids = append(ids, gi.ID)
			}
		}
	}
	st := m.repl.Status()
	connected := m.connectedPeers(ctx)
	out := make([]SyncStatus, 0, len(ids))
	for _, id := range ids {
		m.mu.Lock()
		var logs []replication.LogID
		if h := m.groups[id]; h != nil {
			logs = h.logs
		}
		m.mu.Unlock()
		s := m.withReach(syncStatus(id, logs, st), logs, connected)
		if meta, msgs, err := m.unheldOf(ctx, id, remoteHeads(st)); err == nil {
			for i := range s.Logs {
				switch s.Logs[i].id {
				case logs[0]:
					s.Logs[i].Unheld = len(meta)
				case logs[1]:
					s.Logs[i].Unheld = len(msgs)
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}
