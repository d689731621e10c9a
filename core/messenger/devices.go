package messenger

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/sdk"
)

// One account, several devices. Every device of an account holds the
// account key (docs/protocol.md, "Devices"). The account group (one per
// account, kind account, derived from the account key) holds the devices:
// their certificates, names and removals. A device links a new one with a
// link token (LinkDevice); the new device (JoinAccount) fetches, over
// LinkProtocol, the account and contact keys and an invitation to every
// group the account holds, joins each, and asks for the history it cannot
// read itself over HistoryProtocol. RemoveDevice removes a device from
// every group, each moving to an epoch the device cannot read.

// Direct-request protocols of devices.
const (
	LinkProtocol    = "/skein/device/link/1"
	HistoryProtocol = "/skein/device/history/1"
)

// Link token validity.
const (
	DefaultLinkTTL = 10 * time.Minute
	MaxLinkTTL     = 24 * time.Hour
)

// Device errors.
var (
	// ErrLinkRefused: the linking device refused the link token (unknown
	// to it, already used, expired) or answered for another account.
	ErrLinkRefused = errors.New("device link refused")
	// ErrDeviceNotFound: no device of the account matches the reference.
	ErrDeviceNotFound = errors.New("no such device")
	// ErrNotFresh: linking replaces a node's account; a node that holds
	// groups of its own account is refused.
	ErrNotFresh = errors.New("node is not fresh")
	// ErrNoAccountKey: this device does not hold the account key.
	ErrNoAccountKey = errors.New("this device does not hold the account key")
)

const (
	linkVersion    = 1
	historyVersion = 1
	// Status bytes of link and history answers.
	statusOK      = 0
	statusRefused = 1
	statusRetry   = 2 // history: the requesting device is not known here yet
	// historyClockSkew bounds the age of a history request.
	historyClockSkew = 5 * time.Minute
	// historyBatchBytes bounds the bodies of one history answer.
	historyBatchBytes = 2 << 20
	domainHistoryReq  = "skein/v1/device-history-request"
	maxPendingLinks   = 16
	// linkParallel bounds the groups a new device joins at once.
	linkParallel = 4
	// historyWaitLimit bounds one group's history transfer.
	historyWaitLimit = 2 * time.Minute
)

// pendingLink is a link token this device issued.
type pendingLink struct {
	token *group.LinkToken
	used  bool
}

// deviceState is the messenger's device-linking state.
type deviceState struct {
	mu      sync.Mutex
	pending map[[group.LinkIDSize]byte]*pendingLink
	// linking: a JoinAccount is under way (the watcher waits for it).
	linking bool
	// joining: groups the watcher is joining, by hex id.
	joining map[string]bool

	// The account watcher (device_sync.go).
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// DeviceInfo describes one device of this account.
type DeviceInfo struct {
	Device crypto.PublicKey
	Name   string
	// Added is when the account certified the device.
	Added time.Time
	// LastSeen is the latest time the device wrote something this node
	// holds (a message's send time, or a device record); zero if none.
	LastSeen time.Time
	// This is the device this node runs.
	This bool
	// Removed: the device was removed from the account.
	Removed bool
}

// LinkProgress reports one step of JoinAccount.
type LinkProgress struct {
	// Step: "keys" (the account keys arrived), "group" (a group joined),
	// "history" (messages imported), "done".
	Step  string
	Group crypto.PublicKey
	Name  string
	// Done and Total count the groups joined so far and to join.
	Done, Total int
	// Messages counts history messages imported into Group.
	Messages int
}

// LinkResult is what JoinAccount did.
type LinkResult struct {
	Account  crypto.PublicKey
	Device   crypto.PublicKey
	Groups   []GroupInfo
	Messages int // history messages imported
}

// deviceRecord is an application metadata record of the account group.
type deviceRecord struct {
	Type   string `json:"t"` // "device-name"
	Device string `json:"device"`
	Name   string `json:"name"`
	At     int64  `json:"at"` // Unix ms
}

// startDevices registers the device protocols.
func (m *Messenger) startDevices() error {
	m.dev.pending = map[[group.LinkIDSize]byte]*pendingLink{}
	m.dev.joining = map[string]bool{}
	m.dev.wake, m.dev.stop, m.dev.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go m.watchAccount()
	dm, ok := m.cfg.Network.(sdk.DirectMessenger)
	if !ok {
		return nil
	}
	if err := dm.HandleRequests(LinkProtocol, m.handleLink); err != nil {
		return fmt.Errorf("register %s: %w", LinkProtocol, err)
	}
	if err := dm.HandleRequests(HistoryProtocol, m.handleHistory); err != nil {
		return fmt.Errorf("register %s: %w", HistoryProtocol, err)
	}
	return nil
}

func (m *Messenger) stopDevices() {
	if m.dev.stop != nil {
		close(m.dev.stop)
		<-m.dev.done
		m.dev.wg.Wait()
	}
	if dm, ok := m.cfg.Network.(sdk.DirectMessenger); ok {
		_ = dm.HandleRequests(LinkProtocol, nil)
		_ = dm.HandleRequests(HistoryProtocol, nil)
	}
}

func (m *Messenger) identity() *group.Identity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// accountGroup returns the account group this node holds, or nil.
func (m *Messenger) accountGroup() *held {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.groups {
		if h.g.Kind() == group.KindAccount && !h.rec.Left {
			return h
		}
	}
	return nil
}

// ensureAccountGroup returns the account group, creating it (this device
// its first) if this node holds none.
func (m *Messenger) ensureAccountGroup(ctx context.Context) (*held, error) {
	if h := m.accountGroup(); h != nil {
		return h, nil
	}
	id := m.identity()
	if id.Account == nil {
		return nil, ErrNoAccountKey
	}
	g, err := group.CreateAccountGroup(ctx, id, m.st, m.opts()...)
	if err != nil {
		return nil, err
	}
	if err := m.hold(ctx, g, record{}, true); err != nil {
		return nil, err
	}
	m.wakeAccountSync()
	return m.accountGroup(), nil
}

// LinkDevice makes a one-time link token, valid for ttl (0: DefaultLinkTTL),
// that a new device passes to JoinAccount to become a device of this
// account. Tokens live in memory: a restart forgets them.
func (m *Messenger) LinkDevice(ctx context.Context, ttl time.Duration) (string, time.Time, error) {
	if ttl == 0 {
		ttl = DefaultLinkTTL
	}
	if ttl < time.Second || ttl > MaxLinkTTL {
		return "", time.Time{}, fmt.Errorf("%w: link token validity %s out of range 1s..%s", ErrInvalidArgument, ttl, MaxLinkTTL)
	}
	if _, ok := m.cfg.Network.(sdk.DirectMessenger); !ok {
		return "", time.Time{}, fmt.Errorf("link a device: %w", ErrNoDirectRequests)
	}
	if _, err := m.ensureAccountGroup(ctx); err != nil {
		return "", time.Time{}, fmt.Errorf("link a device: %w", err)
	}
	addrs := m.cfg.Network.Addrs()
	if len(addrs) > group.MaxNodeAddrs {
		addrs = addrs[:group.MaxNodeAddrs]
	}
	t := &group.LinkToken{Account: m.identity().AccountKey(), Peer: m.cfg.Network.PeerID(), Addrs: addrs,
		Expires: time.Now().Add(ttl).Truncate(time.Second), Secret: crypto.RandomKey()}
	text := t.Token()
	if text == "" {
		return "", time.Time{}, fmt.Errorf("link a device: the network's peer id or addresses do not fit a token")
	}
	m.dev.mu.Lock()
	now := time.Now()
	for k, p := range m.dev.pending {
		if !now.Before(p.token.Expires) {
			delete(m.dev.pending, k)
		}
	}
	if len(m.dev.pending) >= maxPendingLinks {
		m.dev.mu.Unlock()
		return "", time.Time{}, fmt.Errorf("%w: %d link tokens are pending; use or let them expire first", ErrInvalidArgument, maxPendingLinks)
	}
	m.dev.pending[t.ID()] = &pendingLink{token: t}
	m.dev.mu.Unlock()
	return text, t.Expires, nil
}

// refusal is an answer with a status byte and a reason.
func refusal(status byte, format string, args ...any) []byte {
	return append([]byte{status}, fmt.Sprintf(format, args...)...)
}

// handleLink answers a link request: version(1) || token id(16) ||
// sealed(request key, "link" || bytes(device name), ad = id). The answer
// is statusOK || sealed(response key, linkGrant, ad = id), or a refusal.
func (m *Messenger) handleLink(ctx context.Context, from string, req []byte) ([]byte, error) {
	if len(req) < 1+group.LinkIDSize+crypto.SealOverhead || req[0] != linkVersion {
		return refusal(statusRefused, "malformed link request (another protocol version?)"), nil
	}
	var id [group.LinkIDSize]byte
	copy(id[:], req[1:])
	m.dev.mu.Lock()
	p := m.dev.pending[id]
	switch {
	case p == nil:
		m.dev.mu.Unlock()
		return refusal(statusRefused, "this device issued no such link token (or restarted since): make a new one with skein device link"), nil
	case p.used:
		m.dev.mu.Unlock()
		return refusal(statusRefused, "the link token was already used: a token links one device; make a new one with skein device link"), nil
	case !time.Now().Before(p.token.Expires):
		m.dev.mu.Unlock()
		return refusal(statusRefused, "the link token expired at %s: make a new one with skein device link", p.token.Expires.UTC().Format(time.RFC3339)), nil
	}
	kq, err := p.token.Key("request")
	if err != nil {
		m.dev.mu.Unlock()
		return nil, err
	}
	pt, err := crypto.Open(&kq, req[1+group.LinkIDSize:], id[:])
	if err != nil {
		m.dev.mu.Unlock()
		return refusal(statusRefused, "the link request does not open under the token's secret (a tampered or forged token)"), nil
	}
	p.used = true // before anything else: a replay finds it used
	t := p.token
	m.dev.mu.Unlock()
	name := string(pt)
	m.logger.Info("linking a new device", "peer", from, "name", name)
	grant, err := m.linkGrant(ctx)
	if err != nil {
		m.logger.Error("link a device", "err", err)
		return refusal(statusRefused, "the linking device failed: %v", err), nil
	}
	kr, err := t.Key("response")
	if err != nil {
		return nil, err
	}
	sealed, err := crypto.Seal(&kr, grant, id[:])
	clear(grant)
	if err != nil {
		return nil, err
	}
	return append([]byte{statusOK}, sealed...), nil
}

// linkGrant encodes what a new device gets: account seed(32) || contact
// key(32) || uvarint(n) || n × (bytes(name) || bytes(invitation token)),
// the account group's invitation first.
func (m *Messenger) linkGrant(ctx context.Context) ([]byte, error) {
	id := m.identity()
	if id.Account == nil || id.ContactKey == nil {
		return nil, ErrNoAccountKey
	}
	ah, err := m.ensureAccountGroup(ctx)
	if err != nil {
		return nil, err
	}
	type grant struct{ name, token string }
	var grants []grant
	inv, err := ah.g.Invite(ctx)
	if err != nil {
		return nil, fmt.Errorf("invite to the account group: %w", err)
	}
	m.markDirty(ah.g)
	grants = append(grants, grant{"", inv.Token()})
	type named struct {
		h    *held
		name string
	}
	m.mu.Lock()
	var hs []named
	for _, h := range m.groups {
		if h != ah && !h.rec.Left {
			hs = append(hs, named{h, h.rec.Name})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(hs, func(a, b named) int { return strings.Compare(a.name, b.name) })
	for _, n := range hs {
		inv, err := n.h.g.Invite(ctx)
		if err != nil {
			m.logger.Warn("link a device: cannot invite it to a group; left out", "group", n.h.g.ID().Fingerprint(), "err", err)
			continue
		}
		m.markDirty(n.h.g)
		grants = append(grants, grant{n.name, inv.Token()})
	}
	var b []byte
	seed := id.Account.Seed()
	b = append(b, seed...)
	clear(seed)
	ck := id.ContactKey.Bytes()
	b = append(b, ck...)
	clear(ck)
	b = appendUvarint(b, uint64(len(grants)))
	for _, g := range grants {
		b = appendBytes(b, []byte(g.name))
		b = appendBytes(b, []byte(g.token))
	}
	return b, nil
}

// JoinAccount makes this node a device of the account of a link token
// (from LinkDevice on one of the account's devices): it fetches the
// account keys and an invitation to every group the account holds from
// the linking device, becomes a new device of the account, joins every
// group, and imports the history the other device holds. progress, if
// not nil, is called at each step. The node must be fresh (no group of
// its own account); an expired, used, tampered or foreign token is
// refused with nothing changed.
func (m *Messenger) JoinAccount(ctx context.Context, token, name string, progress func(LinkProgress)) (LinkResult, error) {
	if progress == nil {
		progress = func(LinkProgress) {}
	}
	if err := checkName(name); err != nil {
		return LinkResult{}, err
	}
	t, err := group.ParseLinkToken(strings.TrimSpace(token))
	if err != nil {
		return LinkResult{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := t.CheckExpiry(time.Now()); err != nil {
		return LinkResult{}, fmt.Errorf("%w: %w", ErrLinkRefused, err)
	}
	id := m.identity()
	if id.AccountKey().Equal(t.Account) {
		return LinkResult{}, fmt.Errorf("%w: this node is already a device of account %s", ErrInvalidArgument, t.Account.Fingerprint())
	}
	if n := len(m.Groups()); n > 0 || m.accountGroup() != nil {
		return LinkResult{}, fmt.Errorf("%w: this node holds %d groups of its own account %s; linking replaces the account: link a fresh node (skein init --link)",
			ErrNotFresh, n, id.AccountKey().Fingerprint())
	}
	dm, ok := m.cfg.Network.(sdk.DirectMessenger)
	if !ok {
		return LinkResult{}, fmt.Errorf("join account: %w", ErrNoDirectRequests)
	}
	if t.Peer == m.cfg.Network.PeerID() {
		return LinkResult{}, fmt.Errorf("%w: the link token is this node's own", ErrInvalidArgument)
	}
	m.dev.mu.Lock()
	if m.dev.linking {
		m.dev.mu.Unlock()
		return LinkResult{}, fmt.Errorf("%w: a link is already under way", ErrInvalidArgument)
	}
	m.dev.linking = true
	m.dev.mu.Unlock()
	defer func() {
		m.dev.mu.Lock()
		m.dev.linking = false
		m.dev.mu.Unlock()
		m.wakeAccountSync()
	}()
	if err := m.cfg.Network.Connect(ctx, sdk.PeerInfo{ID: t.Peer, Addrs: t.Addrs}); err != nil {
		return LinkResult{}, fmt.Errorf("join account: reach the linking device %s: %w: %w", t.Peer, ErrUnreachable, err)
	}
	lid := t.ID()
	kq, err := t.Key("request")
	if err != nil {
		return LinkResult{}, err
	}
	sealed, err := crypto.Seal(&kq, []byte(name), lid[:])
	if err != nil {
		return LinkResult{}, err
	}
	resp, err := dm.Request(ctx, t.Peer, LinkProtocol, append(append([]byte{linkVersion}, lid[:]...), sealed...))
	if err != nil {
		return LinkResult{}, fmt.Errorf("join account: link request to %s: %w", t.Peer, err)
	}
	if len(resp) == 0 {
		return LinkResult{}, fmt.Errorf("join account: %w: empty answer", ErrLinkRefused)
	}
	if resp[0] != statusOK {
		return LinkResult{}, fmt.Errorf("join account: %w: %s", ErrLinkRefused, sanitize(resp[1:]))
	}
	kr, err := t.Key("response")
	if err != nil {
		return LinkResult{}, err
	}
	pt, err := crypto.Open(&kr, resp[1:], lid[:])
	if err != nil {
		return LinkResult{}, fmt.Errorf("join account: %w: the answer does not open under the token's secret", ErrLinkRefused)
	}
	defer clear(pt)
	acct, ck, grants, err := decodeGrant(pt)
	if err != nil {
		return LinkResult{}, fmt.Errorf("join account: %w: %w", ErrLinkRefused, err)
	}
	if !acct.Public().Equal(t.Account) {
		return LinkResult{}, fmt.Errorf("join account: %w: the linking device answered with account %s, the token names %s",
			ErrLinkRefused, acct.Public().Fingerprint(), t.Account.Fingerprint())
	}
	nid, err := group.NewDevice(acct, ck)
	if err != nil {
		return LinkResult{}, err
	}
	if err := group.SaveIdentity(m.cfg.Keystore, nid); err != nil {
		return LinkResult{}, fmt.Errorf("join account: %w", err)
	}
	m.mu.Lock()
	m.id = nid
	m.mu.Unlock()
	m.logger.Info("this node is now a device of account", "account", acct.Public().Fingerprint(), "device", nid.DeviceKey().Fingerprint())
	res := LinkResult{Account: nid.AccountKey(), Device: nid.DeviceKey()}
	progress(LinkProgress{Step: "keys", Total: len(grants)})
	// The account group first (the linking device answers history requests
	// only from a device it sees there), then the others, a few at a time,
	// each with its history as soon as it is joined.
	var (
		mu   sync.Mutex
		errs []error
		done int
	)
	report := func(p LinkProgress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Step == "group" {
			done++
		}
		p.Done, p.Total = done, len(grants)
		progress(p)
	}
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	joinOne := func(gr linkGrantEntry) {
		jctx, cancel := context.WithTimeout(ctx, accountJoinTimeout)
		gi, err := m.joinGroup(jctx, gr.token, gr.name)
		cancel()
		if err != nil {
			fail(fmt.Errorf("join group %q: %w", gr.name, err))
			return
		}
		report(LinkProgress{Step: "group", Group: gi.ID, Name: gr.name})
		if gi.Kind == group.KindAccount {
			return
		}
		mu.Lock()
		res.Groups = append(res.Groups, gi)
		mu.Unlock()
		n, err := m.FetchHistory(ctx, t.Peer, gi.ID)
		mu.Lock()
		res.Messages += n
		mu.Unlock()
		if err != nil {
			fail(err)
		}
		report(LinkProgress{Step: "history", Group: gi.ID, Name: gi.Name, Messages: n})
	}
	joinOne(grants[0])
	if err := m.RenameDevice(ctx, "", name); err != nil {
		fail(err)
	}
	sem := make(chan struct{}, linkParallel)
	var wg sync.WaitGroup
	for _, gr := range grants[1:] {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			joinOne(gr)
		}()
	}
	wg.Wait()
	slices.SortFunc(res.Groups, func(a, b GroupInfo) int { return strings.Compare(a.Name, b.Name) })
	progress(LinkProgress{Step: "done", Done: len(grants), Total: len(grants), Messages: res.Messages})
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("join account %s: linked, but: %w", t.Account.Fingerprint(), err)
	}
	return res, nil
}

// sanitize makes a peer's refusal text printable and short.
func sanitize(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, string(b))
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

type linkGrantEntry struct{ name, token string }

func decodeGrant(b []byte) (*crypto.SigningKey, *crypto.X25519PrivateKey, []linkGrantEntry, error) {
	if len(b) < 64 {
		return nil, nil, nil, errors.New("grant too short")
	}
	acct, err := crypto.NewSigningKeyFromSeed(b[:32])
	if err != nil {
		return nil, nil, nil, err
	}
	ck, err := crypto.NewX25519PrivateKey(b[32:64])
	if err != nil {
		return nil, nil, nil, err
	}
	r := byteReader{b: b[64:]}
	n := r.uvarint()
	if n > 100000 {
		return nil, nil, nil, fmt.Errorf("grant names %d groups", n)
	}
	var out []linkGrantEntry
	for i := uint64(0); i < n && r.err == nil; i++ {
		name := string(r.bytes(MaxGroupName))
		tok := string(r.bytes(group.MaxTokenLen))
		out = append(out, linkGrantEntry{name, tok})
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, nil, nil, fmt.Errorf("malformed grant: %w", r.err)
	}
	if len(out) == 0 {
		return nil, nil, nil, errors.New("grant without the account group")
	}
	return acct, ck, out, nil
}

// Devices lists the devices of this account that the account group
// holds (only this device if there is none yet).
func (m *Messenger) Devices(ctx context.Context) ([]DeviceInfo, error) {
	id := m.identity()
	me := id.DeviceKey()
	h := m.accountGroup()
	if h == nil {
		return []DeviceInfo{{Device: me, Added: id.Cert.Created, This: true}}, nil
	}
	names, seen := m.deviceRecords(h)
	var out []DeviceInfo
	for _, ds := range h.g.Devices() {
		c := ds.Cert
		if !c.Account.Equal(id.AccountKey()) {
			continue
		}
		out = append(out, DeviceInfo{Device: c.Device, Name: names[c.Device], Added: c.Created, LastSeen: seen[c.Device],
			This: c.Device.Equal(me), Removed: ds.Removed})
	}
	m.lastSeen(ctx, out)
	return out, nil
}

// deviceRecords reads the latest name of every device and the time of its
// latest record.
func (m *Messenger) deviceRecords(h *held) (map[crypto.PublicKey]string, map[crypto.PublicKey]time.Time) {
	names := map[crypto.PublicKey]string{}
	seen := map[crypto.PublicKey]time.Time{}
	for _, md := range h.g.Metadata() {
		var r deviceRecord
		if md.Data == nil || json.Unmarshal(md.Data, &r) != nil || r.Type != "device-name" {
			continue
		}
		raw, err := hex.DecodeString(r.Device)
		if err != nil {
			continue
		}
		d, err := crypto.ParsePublicKey(raw)
		// Only a device names itself, or another device of the account.
		if err != nil || checkName(r.Name) != nil {
			continue
		}
		names[d] = r.Name
		if at := time.UnixMilli(r.At); md.Writer.Equal(d) && at.After(seen[d]) {
			seen[d] = at
		}
	}
	return names, seen
}

// lastSeen raises each device's LastSeen to the send time of its latest
// message in the groups this node holds.
func (m *Messenger) lastSeen(ctx context.Context, ds []DeviceInfo) {
	idx := map[crypto.PublicKey]int{}
	for i, d := range ds {
		idx[d.Device] = i
	}
	m.mu.Lock()
	var gs []*group.Group
	for _, h := range m.groups {
		gs = append(gs, h.g)
	}
	m.mu.Unlock()
	for _, g := range gs {
		for msg, err := range g.Messages(ctx, group.Reverse()) {
			if err != nil {
				break
			}
			if i, ok := idx[msg.Sender]; ok && msg.SentAt.After(ds[i].LastSeen) {
				ds[i].LastSeen = msg.SentAt
			}
		}
	}
}

// resolveDevice finds the device a reference names: its exact name, or a
// unique prefix of its hex key or fingerprint; "" names this device.
func (m *Messenger) resolveDevice(ctx context.Context, ref string) (DeviceInfo, error) {
	ds, err := m.Devices(ctx)
	if err != nil {
		return DeviceInfo{}, err
	}
	ref = strings.TrimSpace(ref)
	if ref == "" {
		for _, d := range ds {
			if d.This {
				return d, nil
			}
		}
	}
	var byName, byPrefix []DeviceInfo
	lref := strings.ToLower(ref)
	for _, d := range ds {
		if d.Name == ref && ref != "" {
			byName = append(byName, d)
		}
		if ref != "" && (strings.HasPrefix(d.Device.String(), lref) || strings.HasPrefix(strings.ToLower(d.Device.Fingerprint()), lref)) {
			byPrefix = append(byPrefix, d)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		return DeviceInfo{}, fmt.Errorf("%w: %d devices are named %q; use a fingerprint prefix", ErrAmbiguous, len(byName), ref)
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byPrefix) > 1:
		return DeviceInfo{}, fmt.Errorf("%w: %q is a prefix of %d devices; give more characters", ErrAmbiguous, ref, len(byPrefix))
	}
	return DeviceInfo{}, fmt.Errorf("%w: %q (skein device list shows them)", ErrDeviceNotFound, ref)
}

// RenameDevice names a device of the account (ref as resolveDevice takes
// it; "" is this device): a record in the account group every device
// reads.
func (m *Messenger) RenameDevice(ctx context.Context, ref, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	h, err := m.ensureAccountGroup(ctx)
	if err != nil {
		return fmt.Errorf("rename device: %w", err)
	}
	d, err := m.resolveDevice(ctx, ref)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(deviceRecord{Type: "device-name", Device: d.Device.String(), Name: name, At: time.Now().UnixMilli()})
	if err := h.g.PutMetadata(ctx, b); err != nil {
		return fmt.Errorf("rename device %s: %w", d.Device.Fingerprint(), err)
	}
	m.markDirty(h.g)
	return nil
}

// RemoveDevice removes a device of this account (ref as resolveDevice
// takes it) from the account group and from every group this node holds
// that it is in: each moves to a new epoch the removed device cannot
// read, and what it writes after is refused. It returns the device and
// the number of groups it was removed from.
func (m *Messenger) RemoveDevice(ctx context.Context, ref string) (DeviceInfo, int, error) {
	if strings.TrimSpace(ref) == "" {
		return DeviceInfo{}, 0, fmt.Errorf("%w: name the device to remove", ErrInvalidArgument)
	}
	d, err := m.resolveDevice(ctx, ref)
	if err != nil {
		return DeviceInfo{}, 0, err
	}
	if d.This {
		return d, 0, fmt.Errorf("%w: this is the device you run; remove it from another device of the account", ErrInvalidArgument)
	}
	if d.Removed {
		return d, 0, fmt.Errorf("%w: device %s was already removed", ErrInvalidArgument, d.Device.Fingerprint())
	}
	m.mu.Lock()
	var hs []*held
	for _, h := range m.groups {
		if !h.rec.Left {
			hs = append(hs, h)
		}
	}
	m.mu.Unlock()
	n := 0
	var errs []error
	for _, h := range hs {
		if !h.g.HasDevice(d.Device) {
			continue
		}
		if err := h.g.RemoveDevice(ctx, d.Device); err != nil {
			errs = append(errs, err)
			continue
		}
		m.markDirty(h.g)
		n++
	}
	d.Removed = n > 0 || d.Removed
	return d, n, errors.Join(errs...)
}

// FetchHistory asks peer (a device of this account) for the history of a
// group this device holds and imports it, page by page, waiting for the
// entries to arrive by replication. It returns the messages imported.
func (m *Messenger) FetchHistory(ctx context.Context, peer string, gid crypto.PublicKey) (int, error) {
	h, err := m.resolve(hex.EncodeToString(gid[:]))
	if err != nil {
		return 0, err
	}
	dm, ok := m.cfg.Network.(sdk.DirectMessenger)
	if !ok {
		return 0, ErrNoDirectRequests
	}
	total := 0
	var after uint64
	retry := 50 * time.Millisecond
	// Waiting (for the other device to see this one, or for entries to
	// arrive) is bounded: the link must end even if replication stalls.
	ctx, cancel := context.WithTimeout(ctx, historyWaitLimit)
	defer cancel()
	for {
		req, err := m.historyRequest(peer, gid, after)
		if err != nil {
			return total, err
		}
		resp, err := dm.Request(ctx, peer, HistoryProtocol, req)
		if err != nil {
			return total, fmt.Errorf("history of group %s from %s: %w", gid.Fingerprint(), peer, err)
		}
		if len(resp) == 0 {
			return total, fmt.Errorf("history of group %s from %s: empty answer", gid.Fingerprint(), peer)
		}
		switch resp[0] {
		case statusOK:
		case statusRetry:
			// The other device has not seen this one join the account yet.
			if err := m.wait(ctx, h.g, &retry); err != nil {
				return total, fmt.Errorf("history of group %s from %s: %s: %w", gid.Fingerprint(), peer, sanitize(resp[1:]), err)
			}
			continue
		default:
			return total, fmt.Errorf("history of group %s from %s: %w: %s", gid.Fingerprint(), peer, ErrLinkRefused, sanitize(resp[1:]))
		}
		if len(resp) < 2 {
			return total, fmt.Errorf("history of group %s: malformed answer", gid.Fingerprint())
		}
		more := resp[1] == 1
		msgs, err := group.OpenHistory(m.identity(), gid, resp[2:])
		if err != nil {
			return total, fmt.Errorf("history of group %s from %s: %w", gid.Fingerprint(), peer, err)
		}
		for {
			n, missing, err := h.g.ImportHistory(ctx, msgs)
			total += n
			if err != nil {
				return total, err
			}
			if missing == 0 {
				break
			}
			if err := m.wait(ctx, h.g, &retry); err != nil {
				return total, fmt.Errorf("history of group %s: %d messages whose entries did not arrive: %w", gid.Fingerprint(), missing, err)
			}
		}
		m.markDirty(h.g)
		after += uint64(len(msgs))
		if !more || len(msgs) == 0 {
			return total, nil
		}
	}
}

// wait waits for g to change or for the retry interval (doubling up to 2
// s), asking peers for heads meanwhile.
func (m *Messenger) wait(ctx context.Context, g *group.Group, retry *time.Duration) error {
	t := time.NewTimer(*retry)
	defer t.Stop()
	*retry = min(2**retry, 2*time.Second)
	if err := m.repl.Sync(ctx); err != nil {
		m.logger.Debug("ask peers for heads", "err", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.Changed():
	case <-t.C:
	}
	return nil
}

// historyRequest is version(1) || group(32) || certificate ||
// uvarint(after) || uint64be(time, Unix ms) || signature(64) by the
// device key over domainHistoryReq, the answering peer's id and all that
// precedes the signature.
func (m *Messenger) historyRequest(peer string, gid crypto.PublicKey, after uint64) ([]byte, error) {
	id := m.identity()
	b := []byte{historyVersion}
	b = append(b, gid[:]...)
	cb, _ := id.Cert.MarshalBinary()
	b = append(b, cb...)
	b = appendUvarint(b, after)
	b = appendU64(b, uint64(time.Now().UnixMilli()))
	sig, err := id.Device.Signing().Sign(domainHistoryReq, append([]byte(peer+"\x00"), b...))
	if err != nil {
		return nil, err
	}
	return append(b, sig...), nil
}

// handleHistory answers a history request from a device of this account
// that the account group holds and has not removed: statusOK || more(1)
// || a batch sealed to the device, or a refusal.
func (m *Messenger) handleHistory(ctx context.Context, _ string, req []byte) ([]byte, error) {
	hr, err := parseHistoryRequest(req)
	if err != nil {
		return refusal(statusRefused, "%v", err), nil
	}
	gid, cert, after, at, signed, sig := hr.group, hr.cert, hr.after, hr.at, hr.signed, hr.sig
	id := m.identity()
	if !cert.Account.Equal(id.AccountKey()) || crypto.VerifyDeviceCertificate(cert, id.AccountKey()) != nil {
		return refusal(statusRefused, "the requesting device is not certified by this account"), nil
	}
	if err := cert.Device.Verify(domainHistoryReq, append([]byte(m.cfg.Network.PeerID()+"\x00"), signed...), sig); err != nil {
		return refusal(statusRefused, "the history request's signature does not verify"), nil
	}
	if d := time.Since(time.UnixMilli(int64(at))); d > historyClockSkew || d < -historyClockSkew {
		return refusal(statusRefused, "the history request is %s old (clocks apart, or a replay)", d.Round(time.Second)), nil
	}
	ah := m.accountGroup()
	if ah == nil {
		return refusal(statusRefused, "this device holds no account group"), nil
	}
	if ah.g.DeviceRemoved(cert.Device) {
		return refusal(statusRefused, "device %s was removed from the account", cert.Device.Fingerprint()), nil
	}
	if !ah.g.HasDevice(cert.Device) {
		return refusal(statusRetry, "device %s has not joined the account group here yet", cert.Device.Fingerprint()), nil
	}
	h, err := m.resolve(hex.EncodeToString(gid[:]))
	if err != nil || h.g.ID() != gid || m.recordOf(h).Left {
		return refusal(statusRefused, "this device holds no group %s", gid.Fingerprint()), nil
	}
	var batch []*group.Message
	size, i, more := 0, uint64(0), false
	for msg, err := range h.g.Messages(ctx) {
		if err != nil {
			return nil, err
		}
		if i++; i <= after {
			continue
		}
		if len(batch) == group.MaxHistoryBatch || size+len(msg.Body) > historyBatchBytes && len(batch) > 0 {
			more = true
			break
		}
		batch = append(batch, msg)
		size += len(msg.Body) + 128
	}
	sealed, err := group.SealHistory(gid, cert, group.EncodeHistory(batch))
	if err != nil {
		return nil, err
	}
	flag := byte(0)
	if more {
		flag = 1
	}
	return append([]byte{statusOK, flag}, sealed...), nil
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendBytes(b, p []byte) []byte { return append(appendUvarint(b, uint64(len(p))), p...) }

func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// byteReader reads what the append helpers wrote; the first error sticks.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = errors.New("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *byteReader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.err = fmt.Errorf("field of %d bytes (limit %d, %d left)", n, max, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// historyRequest is a parsed history request (see historyRequest).
type parsedHistoryRequest struct {
	group       crypto.PublicKey
	cert        *crypto.DeviceCertificate
	after, at   uint64
	signed, sig []byte
}

// parseHistoryRequest decodes a history request strictly; it checks no
// signature.
func parseHistoryRequest(req []byte) (*parsedHistoryRequest, error) {
	const head = 1 + 32 + crypto.DeviceCertificateSize
	if len(req) < head+1+8+crypto.SignatureSize || req[0] != historyVersion {
		return nil, errors.New("malformed history request (another protocol version?)")
	}
	p := &parsedHistoryRequest{signed: req[:len(req)-crypto.SignatureSize], sig: req[len(req)-crypto.SignatureSize:]}
	var err error
	if p.group, err = crypto.ParsePublicKey(req[1:33]); err != nil {
		return nil, fmt.Errorf("malformed history request: %w", err)
	}
	if p.cert, err = crypto.ParseDeviceCertificate(req[33:head]); err != nil {
		return nil, fmt.Errorf("malformed history request: %w", err)
	}
	r := byteReader{b: p.signed[head:]}
	p.after = r.uvarint()
	p.at = r.u64()
	if r.err != nil || len(r.b) != 0 {
		return nil, errors.New("malformed history request")
	}
	return p, nil
}
