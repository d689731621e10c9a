package group

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// devID is a device's RecipientID as a map key: the first 8 bytes of its
// Ed25519 key. The state keys devices by it (a device-added whose id is
// taken by another device is refused), so a share's 8-byte recipient names
// one device, and the per-device maps stay small.
type devID uint64

func devIDOf(k crypto.PublicKey) devID { return devID(binary.BigEndian.Uint64(k[:8])) }

func (r RecipientID) dev() devID { return devID(binary.BigEndian.Uint64(r[:])) }

type chainRef struct {
	sender crypto.PublicKey
	epoch  EpochID
}

type chainShare struct {
	start uint64
	key   [32]byte
}

type epochInfo struct {
	id      EpochID
	parent  EpochID
	members map[devID]bool
	// sealedTo lists every device the epoch secret was sealed to, active,
	// removed or unknown: one that is not an active device taints the
	// epoch (resolved when asked, as the devices change).
	sealedTo []devID
	// creator is the rekey entry that made the epoch (nil for genesis).
	creator *metaItem
}

type cutoffState struct {
	metaTime, msgTime uint64
	limits            map[EpochID]uint64
}

func (c *cutoffState) clone() *cutoffState {
	out := &cutoffState{metaTime: c.metaTime, msgTime: c.msgTime, limits: make(map[EpochID]uint64, len(c.limits))}
	for e, l := range c.limits {
		out.limits[e] = l
	}
	return out
}

type inviteInfo struct {
	epoch   EpochID
	account *crypto.PublicKey // bound by the first device that used it
}

// AppMetadata is one application metadata record of the metadata log.
type AppMetadata struct {
	Writer crypto.PublicKey // device
	Epoch  EpochID
	CID    cid.Cid
	Data   []byte // nil if this device lacks the epoch's secret
}

// metaState is the membership state: the result of applying metadata
// entries in the log's total order (docs/protocol.md (Groups), "Applying
// the metadata log"). Every replica with the same entries computes the
// same state. Secrets are not part of it: this device's keys are in
// Group.secrets, its opened shares in the entries (metaItem).
//
// Every change apply makes is one undo reverts (see step): the state can
// be taken back to any position of the log and brought forward again,
// which is how an entry that sorts before others is applied (fold.go).
type metaState struct {
	created  bool
	kind     Kind
	accounts []crypto.PublicKey
	devices  map[devID]*crypto.DeviceCertificate
	// removed counts, per account, the applied entries that removed it;
	// removedDevs, per device, the device-removed entries that removed it
	// (one device of an account, the others staying).
	removed     map[crypto.PublicKey]int
	removedDevs map[devID]int
	cutoffs     map[crypto.PublicKey]*cutoffState // per device
	epochs      map[EpochID]*epochInfo
	epochOrder  []EpochID
	invites     map[crypto.PublicKey]*inviteInfo
	// shared counts, per epoch, this device's chain-keys shares to each
	// device: whom its sending chain of that epoch already reached.
	shared   map[EpochID]map[devID]int
	myChains map[chainRef]chainShare
	app      []*metaItem
	// removals are the rekeys removing accounts, device-removed and
	// member-left entries applied, in order (the filter follows their
	// causal pasts: fold.go).
	removals []*metaItem
}

func newMetaState() *metaState {
	st := &metaState{
		devices:     map[devID]*crypto.DeviceCertificate{},
		removed:     map[crypto.PublicKey]int{},
		removedDevs: map[devID]int{},
		cutoffs:     map[crypto.PublicKey]*cutoffState{},
		epochs:      map[EpochID]*epochInfo{},
		invites:     map[crypto.PublicKey]*inviteInfo{},
		shared:      map[EpochID]map[devID]int{},
		myChains:    map[chainRef]chainShare{},
	}
	st.epochs[GenesisEpoch] = &epochInfo{id: GenesisEpoch, members: map[devID]bool{}}
	st.epochOrder = []EpochID{GenesisEpoch}
	return st
}

// device returns the certificate of device d, or nil if d was not added.
func (st *metaState) device(d crypto.PublicKey) *crypto.DeviceCertificate {
	if c := st.devices[devIDOf(d)]; c != nil && c.Device == d {
		return c
	}
	return nil
}

func (st *metaState) isRemoved(account crypto.PublicKey) bool { return st.removed[account] > 0 }

// gone reports whether the device of certificate c is removed: its account
// was removed, or the device itself (device-removed).
func (st *metaState) gone(c *crypto.DeviceCertificate) bool {
	return st.isRemoved(c.Account) || st.removedDevs[devIDOf(c.Device)] > 0
}

// active reports whether device d was added and is not removed (neither
// its account nor itself).
func (st *metaState) active(d crypto.PublicKey) bool {
	c := st.device(d)
	return c != nil && !st.gone(c)
}

func (st *metaState) accountOf(d crypto.PublicKey) (crypto.PublicKey, bool) {
	if c := st.device(d); c != nil {
		return c.Account, true
	}
	return crypto.PublicKey{}, false
}

// member reports whether device d is a member of epoch e.
func (st *metaState) member(e EpochID, d crypto.PublicKey) bool {
	ep := st.epochs[e]
	return ep != nil && ep.members[devIDOf(d)] && st.device(d) != nil
}

// tainted reports whether an epoch's secret went to a device whose account
// is now removed, or that was never added: members must not send in it
// and rekey first.
func (st *metaState) tainted(e EpochID) bool {
	ep := st.epochs[e]
	if ep == nil {
		return false
	}
	for d := range ep.members {
		if c := st.devices[d]; c != nil && st.gone(c) {
			return true
		}
	}
	for _, d := range ep.sealedTo {
		if c := st.devices[d]; c == nil || st.gone(c) {
			return true
		}
	}
	return false
}

func (st *metaState) latestEpoch() EpochID { return st.epochOrder[len(st.epochOrder)-1] }

// mergeCutoff merges c into the device's cutoff (per field, the maximum)
// and returns what undo needs to restore.
func (st *metaState) mergeCutoff(c Cutoff) oldCutoff {
	old := oldCutoff{device: c.Device}
	cs := st.cutoffs[c.Device]
	if cs == nil {
		cs = &cutoffState{limits: map[EpochID]uint64{}}
		st.cutoffs[c.Device] = cs
	} else {
		old.prev = cs.clone()
	}
	cs.metaTime = max(cs.metaTime, c.MetaTime)
	cs.msgTime = max(cs.msgTime, c.MsgTime)
	for _, l := range c.Limits {
		cs.limits[l.Epoch] = max(cs.limits[l.Epoch], l.Limit)
	}
	return old
}

// metaItem is one metadata entry as the state sees it, decoded once (by
// decodeItem, outside the group's lock when it comes from a join): its
// payload opened and decoded, its stand-alone signatures checked, this
// device's share in it opened. It keeps only what the state reads: a
// group holds one per metadata entry, two per join.
type metaItem struct {
	cid    cid.Cid
	writer crypto.PublicKey
	time   uint64
	next   []cid.Cid // the entry's next links: the removal filter walks them
	err    error     // decode or signature failure: refused wherever it sorts

	typ   MetaType
	epoch EpochID
	// device-added: the certificate, the authorization type and, for an
	// invitation, its key; invitation-created: the key. (Every join writes
	// these two; their payloads are not kept.)
	cert     *crypto.DeviceCertificate
	authType byte
	key      crypto.PublicKey
	// p is the payload of the other types, without the boxes of shares
	// (this device's is opened) and without the recipients of another
	// device's chain shares (nothing reads them).
	p *MetaPayload

	mine *opened // what this device opened of the entry

	// steps[pass] is what applying the entry did in that pass's state
	// (fold.go): pass 0 applies every entry, pass 1 leaves out the
	// entries of removed devices past their cutoffs.
	steps [2]step
}

// opened is what this device opened of an entry: its share (chain key or
// epoch secret), or why it did not open; application metadata, once read.
type opened struct {
	chain  *chainShare
	secret *[32]byte
	err    error
	app    *openedApp
}

type openedApp struct {
	data []byte
	err  error
}

func (it *metaItem) opened() *opened {
	if it.mine == nil {
		it.mine = &opened{}
	}
	return it.mine
}

// compareItems orders items as the log orders entries: time, then writer,
// then binary CID.
func compareItems(a, b *metaItem) int {
	switch {
	case a.time < b.time:
		return -1
	case a.time > b.time:
		return 1
	}
	if c := compareKeys(a.writer, b.writer); c != 0 {
		return c
	}
	return strings.Compare(a.cid.KeyString(), b.cid.KeyString())
}

// step records what apply changed, so that undo reverts exactly that.
type step struct {
	done  bool
	flags stepFlags
	err   error // why the entry was refused (it may still have changed the state: see apply)
	x     *removal
}

// removal is what a rekey or member-left that took effect changed beyond
// what its payload says.
type removal struct {
	old  []oldCutoff      // cutoffs before the merges, in merge order
	acct crypto.PublicKey // member-left: the account it removed
}

type oldCutoff struct {
	device crypto.PublicKey
	prev   *cutoffState // nil: the device had no cutoff
}

type stepFlags uint8

const (
	setCreated  stepFlags = 1 << iota // group-created set created, kind, accounts
	setDevice                         // device-added added the device
	setMember                         // device-added made it a member of the epoch
	setInvite                         // invitation-created registered the key
	boundInvite                       // device-added bound the invitation to its account
	setMyChain                        // chain-keys gave this device the writer's chain
	applied                           // chain-keys counted, rekey, member-left or app-metadata took effect
)

func pub(k ed25519.PublicKey) crypto.PublicKey {
	var p crypto.PublicKey
	copy(p[:], k)
	return p
}

// decodeItem opens and decodes a metadata entry, checks every signature
// it carries that needs no state (group-created under the group key,
// device-added's certificate and authorization) and opens this device's
// share. The result is final for the entry. It reads only what never
// changes once the group is open, so a join runs it without the group's
// lock.
func (g *Group) decodeItem(k *logKeys, e *log.Entry) *metaItem {
	it := &metaItem{cid: e.CID(), writer: pub(e.Writer), time: e.Time, next: e.Next}
	w := it.writer
	p, err := openMeta(k, g.id, w, e.Payload)
	if err != nil {
		it.err = err
		return it
	}
	switch p.Type {
	case MetaGroupCreated:
		if g.knownKind != 0 && p.Kind != g.knownKind {
			it.err = fmt.Errorf("%w: group-created for a %s group, this is a %s group", ErrConflict, p.Kind, g.knownKind)
		} else if err := g.id.Verify(domainGroupCreated, groupCreatedMessage(g.id, p.Kind, p.Accounts, w), p.GroupSig); err != nil {
			it.err = fmt.Errorf("%w: group-created: %v", ErrBadAuthorization, err)
		}
		p.GroupSig = nil
	case MetaDeviceAdded:
		switch {
		case !p.Cert.Device.Equal(w):
			it.err = fmt.Errorf("%w: device-added for device %s written by %s", ErrNotCertified, p.Cert.Device.Fingerprint(), w.Fingerprint())
		case crypto.VerifyDeviceCertificate(p.Cert, p.Cert.Account) != nil:
			it.err = fmt.Errorf("%w: device %s: certificate does not verify under account %s", ErrNotCertified, w.Fingerprint(), p.Cert.Account.Fingerprint())
		default:
			signer := g.id
			if p.AuthType == AuthInvitation {
				signer = p.InviteKey
			}
			if err := signer.Verify(domainDeviceAdded, deviceAddedMessage(g.id, p.Epoch, p.AuthType, p.InviteKey, p.Cert), p.AuthSig); err != nil {
				it.err = fmt.Errorf("%w: device-added of %s: %v", ErrBadAuthorization, w.Fingerprint(), err)
			}
		}
		p.AuthSig = nil
	case MetaChainKeys, MetaRekey, MetaDeviceRemoved:
		if !g.replica {
			g.openShare(it, p)
		}
		for i := range p.Shares {
			p.Shares[i].Box = nil
		}
		if p.Type == MetaChainKeys && w != g.me.DeviceKey() {
			p.Shares = nil // only this device's own chain shares are counted
		}
	}
	if it.err != nil {
		return it
	}
	it.typ, it.epoch = p.Type, p.Epoch
	switch p.Type {
	case MetaDeviceAdded:
		it.cert, it.authType, it.key = p.Cert, p.AuthType, p.InviteKey
	case MetaInvitationCreated:
		it.key = p.InviteKey
	default:
		it.p = p
	}
	return it
}

// openShare opens the share of p addressed to this device, if any.
func (g *Group) openShare(it *metaItem, p *MetaPayload) {
	me := g.me.DeviceKey()
	mine := RecipientOf(me)
	for _, s := range p.Shares {
		if s.Recipient != mine {
			continue
		}
		sealed := append(p.Ephemeral[:len(p.Ephemeral):len(p.Ephemeral)], s.Box...)
		switch p.Type {
		case MetaChainKeys:
			pt, err := g.suite.OpenFrom(g.me.Device.X25519(), sealed, chainKeyAD(g.id, p.Epoch, it.writer, me))
			if err != nil || len(pt) != chainShareSize {
				it.opened().err = fmt.Errorf("%w: chain key share from %s", ErrTampered, it.writer.Fingerprint())
				return
			}
			cs := &chainShare{start: binary.BigEndian.Uint64(pt[:8])}
			copy(cs.key[:], pt[8:])
			clear(pt)
			it.opened().chain = cs
		case MetaRekey, MetaDeviceRemoved:
			pt, err := g.suite.OpenFrom(g.me.Device.X25519(), sealed, epochSecretAD(g.id, p.NewEpoch, it.writer, me))
			if err != nil || len(pt) != 32 {
				it.opened().err = fmt.Errorf("%w: epoch secret share from %s", ErrTampered, it.writer.Fingerprint())
				return
			}
			var k [32]byte
			copy(k[:], pt)
			clear(pt)
			it.opened().secret = &k
		}
		return
	}
}

// apply applies one metadata entry to st and returns what it changed, and
// why it refused the entry if it did. It reads only st and the item (never
// the clock, the group's secrets or another state), so that applying the
// same items in the same order gives the same state on every replica.
//
// A new entry type (or a new rule) needs three things here: decodeItem
// keeps what apply reads; apply records every change it makes in the
// step (a flag, or what it overwrote in removal); undo reverts exactly
// those changes. TestIncrementalMatchesReplay checks the three against a
// replay from scratch: add the new entry to its random histories. A refused entry changes nothing,
// except a chain-keys or rekey entry whose share for this device does not
// open: it takes effect for everyone else and is reported here.
func (g *Group) apply(st *metaState, it *metaItem) (s step) {
	s.done = true
	if it.err != nil {
		s.err = it.err
		return s
	}
	p, w := it.p, it.writer
	mine := it.mine
	if mine == nil {
		mine = &opened{}
	}
	if a, ok := st.accountOf(w); ok && st.isRemoved(a) {
		s.err = fmt.Errorf("%w: writer %s wrote after its account was removed", ErrRemoved, w.Fingerprint())
		return s
	}
	if c := st.device(w); c != nil && st.removedDevs[devIDOf(w)] > 0 {
		s.err = fmt.Errorf("%w: writer %s wrote after the device was removed", ErrRemoved, w.Fingerprint())
		return s
	}
	memberOf := func(epoch EpochID) error {
		if st.epochs[epoch] == nil {
			return fmt.Errorf("%w: %s", ErrUnknownEpoch, epoch)
		}
		if !st.active(w) || !st.member(epoch, w) {
			return fmt.Errorf("%w: writer %s of %s is not a member of epoch %s", ErrNotMember, w.Fingerprint(), it.typ, epoch)
		}
		return nil
	}
	switch it.typ {
	case MetaGroupCreated:
		if !st.created {
			st.created, st.kind, st.accounts = true, p.Kind, p.Accounts
			s.flags |= setCreated
			return s
		}
		if p.Kind != st.kind || !sameKeys(st.accounts, p.Accounts) {
			s.err = fmt.Errorf("%w: a second group-created names another kind or other accounts", ErrConflict)
		}
	case MetaDeviceAdded:
		s.err = g.applyDeviceAdded(st, it, &s)
	case MetaInvitationCreated:
		if s.err = memberOf(it.epoch); s.err != nil {
			return s
		}
		if _, ok := st.invites[it.key]; !ok {
			st.invites[it.key] = &inviteInfo{epoch: it.epoch}
			s.flags |= setInvite
		}
	case MetaChainKeys:
		if s.err = memberOf(p.Epoch); s.err != nil {
			return s
		}
		if w == g.me.DeviceKey() {
			set := st.shared[p.Epoch]
			if set == nil {
				set = map[devID]int{}
				st.shared[p.Epoch] = set
			}
			for _, sh := range p.Shares {
				set[sh.Recipient.dev()]++
			}
			s.flags |= applied
		}
		if mine.err != nil {
			s.err = mine.err
			return s
		}
		ref := chainRef{sender: w, epoch: p.Epoch}
		if _, ok := st.myChains[ref]; !ok && mine.chain != nil {
			st.myChains[ref] = *mine.chain
			s.flags |= setMyChain
		}
	case MetaRekey:
		if s.err = memberOf(p.Epoch); s.err != nil {
			return s
		}
		if _, ok := st.epochs[p.NewEpoch]; ok {
			s.err = fmt.Errorf("%w: epoch id %s reused", ErrConflict, p.NewEpoch)
			return s
		}
		own, _ := st.accountOf(w)
		for _, a := range p.Removed {
			if a.Equal(own) {
				s.err = fmt.Errorf("%w: a rekey cannot remove its writer's account (leave instead)", ErrConflict)
				return s
			}
		}
		s.flags |= applied
		if len(p.Removed) > 0 {
			st.removals = append(st.removals, it)
		}
		for _, a := range p.Removed {
			st.removed[a]++
		}
		for _, c := range p.Cutoffs {
			if a, ok := st.accountOf(c.Device); ok && containsKey(p.Removed, a) {
				if s.x == nil {
					s.x = &removal{}
				}
				s.x.old = append(s.x.old, st.mergeCutoff(c))
			}
		}
		ep := &epochInfo{id: p.NewEpoch, parent: p.Epoch, members: map[devID]bool{}, creator: it}
		for _, sh := range p.Shares {
			d := sh.Recipient.dev()
			ep.sealedTo = append(ep.sealedTo, d)
			if c := st.devices[d]; c != nil && !st.gone(c) {
				ep.members[d] = true
			}
		}
		st.epochs[p.NewEpoch] = ep
		st.epochOrder = append(st.epochOrder, p.NewEpoch)
		s.err = mine.err
	case MetaDeviceRemoved:
		s.err = g.applyDeviceRemoved(st, it, &s)
	case MetaMemberLeft:
		if !st.active(w) {
			s.err = fmt.Errorf("%w: writer %s", ErrNotMember, w.Fingerprint())
			return s
		}
		own, _ := st.accountOf(w)
		s.flags |= applied
		s.x = &removal{acct: own}
		st.removed[own]++
		st.removals = append(st.removals, it)
		for _, c := range p.Cutoffs {
			if a, ok := st.accountOf(c.Device); ok && a.Equal(own) {
				s.x.old = append(s.x.old, st.mergeCutoff(c))
			}
		}
	case MetaAppMetadata:
		if s.err = memberOf(p.Epoch); s.err != nil {
			return s
		}
		st.app = append(st.app, it)
		s.flags |= applied
	}
	return s
}

func (g *Group) applyDeviceAdded(st *metaState, it *metaItem, s *step) error {
	w := it.writer
	if !st.created {
		return fmt.Errorf("%w: device-added before group-created", ErrNotMember)
	}
	acct := it.cert.Account
	if st.isRemoved(acct) {
		return fmt.Errorf("%w: account %s was removed", ErrRemoved, acct.Fingerprint())
	}
	if st.removedDevs[devIDOf(w)] > 0 {
		return fmt.Errorf("%w: device %s was removed from its account", ErrRemoved, w.Fingerprint())
	}
	if st.kind != KindMulti && !containsKey(st.accounts, acct) {
		return fmt.Errorf("%w: account %s may not join this %s group", ErrNotCertified, acct.Fingerprint(), st.kind)
	}
	ep := st.epochs[it.epoch]
	if ep == nil {
		return fmt.Errorf("%w: %s", ErrUnknownEpoch, it.epoch)
	}
	id := devIDOf(w)
	if c := st.devices[id]; c != nil && c.Device != w {
		return fmt.Errorf("%w: device %s has the recipient id of device %s", ErrConflict, w.Fingerprint(), c.Device.Fingerprint())
	}
	if it.authType == AuthInvitation {
		inv := st.invites[it.key]
		if inv == nil || inv.epoch != it.epoch {
			return fmt.Errorf("%w: invitation key %s for epoch %s", ErrInvitationUnknown, it.key.Fingerprint(), it.epoch)
		}
		if it.epoch != st.latestEpoch() {
			return fmt.Errorf("%w: invitation key %s was revoked by the rekey to epoch %s", ErrInvitationUnknown, it.key.Fingerprint(), st.latestEpoch())
		}
		if inv.account != nil && !inv.account.Equal(acct) {
			return fmt.Errorf("%w: invitation already used by account %s", ErrBadAuthorization, inv.account.Fingerprint())
		}
		if inv.account == nil {
			a := acct
			inv.account = &a
			s.flags |= boundInvite
		}
	}
	if st.devices[id] == nil {
		st.devices[id] = it.cert
		s.flags |= setDevice
	}
	if !ep.members[id] {
		ep.members[id] = true
		s.flags |= setMember
	}
	return nil
}

// undo reverts what apply did (recorded in s) to st. Entries are undone
// in the reverse order they were applied, so every value undo restores is
// the one apply found.
func (g *Group) undo(st *metaState, it *metaItem, s *step) {
	if s.flags == 0 {
		return
	}
	p := it.p
	switch it.typ {
	case MetaGroupCreated:
		st.created, st.kind, st.accounts = false, 0, nil
	case MetaDeviceAdded:
		id := devIDOf(it.writer)
		if s.flags&setMember != 0 {
			delete(st.epochs[it.epoch].members, id)
		}
		if s.flags&setDevice != 0 {
			delete(st.devices, id)
		}
		if s.flags&boundInvite != 0 {
			st.invites[it.key].account = nil
		}
	case MetaInvitationCreated:
		delete(st.invites, it.key)
	case MetaChainKeys:
		if s.flags&setMyChain != 0 {
			delete(st.myChains, chainRef{sender: it.writer, epoch: p.Epoch})
		}
		if s.flags&applied != 0 {
			set := st.shared[p.Epoch]
			for _, sh := range p.Shares {
				if set[sh.Recipient.dev()]--; set[sh.Recipient.dev()] == 0 {
					delete(set, sh.Recipient.dev())
				}
			}
			if len(set) == 0 {
				delete(st.shared, p.Epoch)
			}
		}
	case MetaRekey:
		if len(p.Removed) > 0 {
			st.removals = st.removals[:len(st.removals)-1]
		}
		delete(st.epochs, p.NewEpoch)
		st.epochOrder = st.epochOrder[:len(st.epochOrder)-1]
		if s.x != nil {
			st.restoreCutoffs(s.x.old)
		}
		for _, a := range p.Removed {
			st.unremove(a)
		}
	case MetaDeviceRemoved:
		g.undoDeviceRemoved(st, it, s)
	case MetaMemberLeft:
		st.removals = st.removals[:len(st.removals)-1]
		st.restoreCutoffs(s.x.old)
		st.unremove(s.x.acct)
	case MetaAppMetadata:
		st.app = st.app[:len(st.app)-1]
	}
}

func (st *metaState) unremove(a crypto.PublicKey) {
	if st.removed[a]--; st.removed[a] <= 0 {
		delete(st.removed, a)
	}
}

func (st *metaState) restoreCutoffs(old []oldCutoff) {
	for i := len(old) - 1; i >= 0; i-- {
		if old[i].prev == nil {
			delete(st.cutoffs, old[i].device)
		} else {
			st.cutoffs[old[i].device] = old[i].prev
		}
	}
}

func containsKey(keys []crypto.PublicKey, k crypto.PublicKey) bool {
	for _, x := range keys {
		if x.Equal(k) {
			return true
		}
	}
	return false
}

func sameKeys(a, b []crypto.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
