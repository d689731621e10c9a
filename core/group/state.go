package group

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

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
	members map[crypto.PublicKey]bool
	// sealedTo lists every device the epoch secret was sealed to, active or
	// not: a removed one among them taints the epoch.
	sealedTo []crypto.PublicKey
	secret   *[32]byte
}

type cutoffState struct {
	metaTime, msgTime uint64
	limits            map[EpochID]uint64
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

// metaState is the membership state: the result of applying every
// metadata entry in the log's total order (see docs/protocol.md (Groups),
// "Applying the metadata log"). Every replica with the same entries
// computes the same state, apart from which secrets it can open.
type metaState struct {
	created     bool
	kind        Kind
	accounts    []crypto.PublicKey
	devices     map[crypto.PublicKey]*crypto.DeviceCertificate
	removed     map[crypto.PublicKey]bool // accounts
	cutoffs     map[crypto.PublicKey]*cutoffState
	epochs      map[EpochID]*epochInfo
	epochOrder  []EpochID
	invites     map[crypto.PublicKey]*inviteInfo
	chainShared map[chainRef]map[crypto.PublicKey]bool
	myChains    map[chainRef]chainShare
	app         []AppMetadata
	maxMetaTime map[crypto.PublicKey]uint64 // per writer device
}

func newMetaState() *metaState {
	st := &metaState{
		devices:     map[crypto.PublicKey]*crypto.DeviceCertificate{},
		removed:     map[crypto.PublicKey]bool{},
		cutoffs:     map[crypto.PublicKey]*cutoffState{},
		epochs:      map[EpochID]*epochInfo{},
		invites:     map[crypto.PublicKey]*inviteInfo{},
		chainShared: map[chainRef]map[crypto.PublicKey]bool{},
		myChains:    map[chainRef]chainShare{},
		maxMetaTime: map[crypto.PublicKey]uint64{},
	}
	st.epochs[GenesisEpoch] = &epochInfo{id: GenesisEpoch, members: map[crypto.PublicKey]bool{}}
	st.epochOrder = []EpochID{GenesisEpoch}
	return st
}

// active reports whether device d was added and its account not removed.
func (st *metaState) active(d crypto.PublicKey) bool {
	c := st.devices[d]
	return c != nil && !st.removed[c.Account]
}

func (st *metaState) accountOf(d crypto.PublicKey) (crypto.PublicKey, bool) {
	c := st.devices[d]
	if c == nil {
		return crypto.PublicKey{}, false
	}
	return c.Account, true
}

// tainted reports whether an epoch's secret went to a device whose account
// is now removed: members must not send in it and rekey first.
func (st *metaState) tainted(e EpochID) bool {
	ep := st.epochs[e]
	if ep == nil {
		return false
	}
	for d := range ep.members {
		if a, ok := st.accountOf(d); ok && st.removed[a] {
			return true
		}
	}
	for _, d := range ep.sealedTo {
		if a, ok := st.accountOf(d); !ok || st.removed[a] {
			return true
		}
	}
	return false
}

func (st *metaState) latestEpoch() EpochID { return st.epochOrder[len(st.epochOrder)-1] }

func (st *metaState) mergeCutoff(c Cutoff) {
	cs := st.cutoffs[c.Device]
	if cs == nil {
		cs = &cutoffState{limits: map[EpochID]uint64{}}
		st.cutoffs[c.Device] = cs
	}
	cs.metaTime = max(cs.metaTime, c.MetaTime)
	cs.msgTime = max(cs.msgTime, c.MsgTime)
	for _, l := range c.Limits {
		cs.limits[l.Epoch] = max(cs.limits[l.Epoch], l.Limit)
	}
}

// decoded caches what is expensive and immutable about one metadata entry.
type decodedMeta struct {
	payload *MetaPayload
	err     error // decode or signature failure, final
	// opened secrets for this device (chain key or epoch secret shares)
	openedChain  *chainShare
	openedSecret *[32]byte
	openErr      error
	opened       bool
}

func pub(k ed25519.PublicKey) crypto.PublicKey {
	var p crypto.PublicKey
	copy(p[:], k)
	return p
}

// verifyMeta decodes a metadata entry and checks every signature it
// carries that needs no state: group-created under the group key,
// device-added's certificate, and a group-key authorization. The result
// is final for the entry.
func (g *Group) verifyMeta(e *log.Entry) *decodedMeta {
	key := e.CID().KeyString()
	if d, ok := g.metaCache[key]; ok {
		return d
	}
	d := &decodedMeta{}
	g.metaCache[key] = d
	p, err := DecodeMetaPayload(e.Payload)
	if err != nil {
		d.err = err
		return d
	}
	d.payload = p
	w := pub(e.Writer)
	switch p.Type {
	case MetaGroupCreated:
		if g.kind != 0 && p.Kind != g.kind {
			d.err = fmt.Errorf("%w: group-created for a %s group, this is a %s group", ErrConflict, p.Kind, g.kind)
		} else if err := g.id.Verify(domainGroupCreated, groupCreatedMessage(g.id, p.Kind, p.Accounts, w), p.GroupSig); err != nil {
			d.err = fmt.Errorf("%w: group-created: %v", ErrBadAuthorization, err)
		}
	case MetaDeviceAdded:
		switch {
		case !p.Cert.Device.Equal(w):
			d.err = fmt.Errorf("%w: device-added for device %s written by %s", ErrNotCertified, p.Cert.Device.Fingerprint(), w.Fingerprint())
		case crypto.VerifyDeviceCertificate(p.Cert, p.Cert.Account) != nil:
			d.err = fmt.Errorf("%w: device %s: certificate does not verify under account %s", ErrNotCertified, w.Fingerprint(), p.Cert.Account.Fingerprint())
		default:
			signer := g.id
			if p.AuthType == AuthInvitation {
				signer = p.InviteKey
			}
			if err := signer.Verify(domainDeviceAdded, deviceAddedMessage(g.id, p.Epoch, p.AuthType, p.InviteKey, p.Cert), p.AuthSig); err != nil {
				d.err = fmt.Errorf("%w: device-added of %s: %v", ErrBadAuthorization, w.Fingerprint(), err)
			}
		}
	}
	return d
}

// openShares opens, once per entry, the share addressed to this device.
func (g *Group) openShares(e *log.Entry, d *decodedMeta) {
	if d.opened {
		return
	}
	d.opened = true
	me := g.me.DeviceKey()
	w := pub(e.Writer)
	p := d.payload
	for _, s := range p.Shares {
		if !s.Recipient.Equal(me) {
			continue
		}
		switch p.Type {
		case MetaChainKeys:
			pt, err := crypto.OpenFrom(g.me.Device.X25519(), s.Sealed, chainKeyAD(g.id, p.Epoch, w, me))
			if err != nil || len(pt) != 8+32 {
				d.openErr = fmt.Errorf("%w: chain key share from %s", ErrTampered, w.Fingerprint())
				return
			}
			cs := &chainShare{start: binary.BigEndian.Uint64(pt[:8])}
			copy(cs.key[:], pt[8:])
			clear(pt)
			d.openedChain = cs
		case MetaRekey:
			pt, err := crypto.OpenFrom(g.me.Device.X25519(), s.Sealed, epochSecretAD(g.id, p.NewEpoch, w, me))
			if err != nil || len(pt) != 32 {
				d.openErr = fmt.Errorf("%w: epoch secret share from %s", ErrTampered, w.Fingerprint())
				return
			}
			var k [32]byte
			copy(k[:], pt)
			clear(pt)
			d.openedSecret = &k
		}
		return
	}
}

// rebuild recomputes the membership state from the whole metadata log in
// total order and returns the entries it refused for the first time.
//
// The log admits an entry by a device whatever removals this replica
// knows (see metaAccess.CanWrite), so the entries a removed device wrote
// concurrently with its removal, or backdated below it, are in the log and
// may sort before the removal. Removal is applied here instead, the same
// way on every replica: a first pass finds the removals and cutoffs the
// whole log defines; the second refuses every entry by a device of a
// removed account past its cutoff metaTime, wherever it sorts.
func (g *Group) rebuild(ctx context.Context) ([]Rejection, error) {
	st, refused, err := g.replay(ctx, nil)
	if err != nil {
		return nil, err
	}
	if len(st.removed) > 0 {
		if st, refused, err = g.replay(ctx, st); err != nil {
			return nil, err
		}
	}
	var rejected []Rejection
	for _, r := range refused {
		k := r.e.CID().KeyString()
		if g.reported[k] {
			continue
		}
		g.reported[k] = true
		rejected = append(rejected, Rejection{Log: "meta", CID: r.e.CID(), Err: r.err})
		g.logger.Warn("metadata entry refused", "cid", r.e.CID().String(), "err", r.err)
	}
	// Secrets this device learned outside the log (creation, invitation,
	// derivation) complete what the shares gave.
	for id, s := range g.secrets {
		if ep := st.epochs[id]; ep != nil && ep.secret == nil {
			ep.secret = s
		}
	}
	for id, ep := range st.epochs {
		if ep.secret != nil {
			if _, ok := g.secrets[id]; !ok {
				g.secrets[id] = ep.secret
			}
		}
	}
	g.state = st
	if g.kind == 0 && st.created {
		g.kind = st.kind // a replication node learns the kind from the signed group-created
	}
	g.signalChanged()
	return rejected, nil
}

// refusal is one metadata entry a replay refused, and why.
type refusal struct {
	e   *log.Entry
	err error
}

// replay applies the whole metadata log in total order to a fresh state.
// With final (the state a previous replay ended in), it also refuses every
// entry by a device of an account final removes, past that device's cutoff.
func (g *Group) replay(ctx context.Context, final *metaState) (*metaState, []refusal, error) {
	st := newMetaState()
	if s, ok := g.secrets[GenesisEpoch]; ok {
		st.epochs[GenesisEpoch].secret = s
	}
	var refused []refusal
	for e, err := range g.meta.Entries(ctx) {
		if err != nil {
			return nil, nil, fmt.Errorf("read metadata log: %w", err)
		}
		if final != nil {
			if err := g.pastCutoff(final, e); err != nil {
				refused = append(refused, refusal{e, err})
				continue
			}
		}
		if err := g.apply(st, e); err != nil {
			refused = append(refused, refusal{e, err})
		}
	}
	return st, refused, nil
}

// pastCutoff refuses a metadata entry by a device of an account st
// removed, written after the last entry of it the remover had seen. A
// member-left is exempt: it is the removal itself (apply refuses a second
// one, its writer being no longer active).
func (g *Group) pastCutoff(st *metaState, e *log.Entry) error {
	if d := g.verifyMeta(e); d.err == nil && d.payload.Type == MetaMemberLeft {
		return nil
	}
	w := pub(e.Writer)
	acct, ok := st.accountOf(w)
	if !ok || !st.removed[acct] {
		return nil
	}
	if cs := st.cutoffs[w]; cs == nil || e.Time > cs.metaTime {
		return fmt.Errorf("%w: entry by device %s at time %d, after its account was removed", ErrRemoved, w.Fingerprint(), e.Time)
	}
	return nil
}

// apply applies one metadata entry to st, or returns why it is refused.
func (g *Group) apply(st *metaState, e *log.Entry) error {
	d := g.verifyMeta(e)
	if d.err != nil {
		return d.err
	}
	p := d.payload
	w := pub(e.Writer)
	st.maxMetaTime[w] = max(st.maxMetaTime[w], e.Time)
	if a, ok := st.accountOf(w); ok && st.removed[a] {
		return fmt.Errorf("%w: writer %s wrote after its account was removed", ErrRemoved, w.Fingerprint())
	}
	memberOf := func(epoch EpochID) error {
		ep := st.epochs[epoch]
		if ep == nil {
			return fmt.Errorf("%w: %s", ErrUnknownEpoch, epoch)
		}
		if !st.active(w) || !ep.members[w] {
			return fmt.Errorf("%w: writer %s of %s is not a member of epoch %s", ErrNotMember, w.Fingerprint(), p.Type, epoch)
		}
		return nil
	}
	switch p.Type {
	case MetaGroupCreated:
		if !st.created {
			st.created, st.kind, st.accounts = true, p.Kind, p.Accounts
			return nil
		}
		if !sameKeys(st.accounts, p.Accounts) {
			return fmt.Errorf("%w: a second group-created names other accounts", ErrConflict)
		}
	case MetaDeviceAdded:
		if !st.created {
			return fmt.Errorf("%w: device-added before group-created", ErrNotMember)
		}
		acct := p.Cert.Account
		if st.removed[acct] {
			return fmt.Errorf("%w: account %s was removed", ErrRemoved, acct.Fingerprint())
		}
		if st.kind != KindMulti && !containsKey(st.accounts, acct) {
			return fmt.Errorf("%w: account %s may not join this %s group", ErrNotCertified, acct.Fingerprint(), st.kind)
		}
		ep := st.epochs[p.Epoch]
		if ep == nil {
			return fmt.Errorf("%w: %s", ErrUnknownEpoch, p.Epoch)
		}
		if p.AuthType == AuthInvitation {
			inv := st.invites[p.InviteKey]
			if inv == nil || inv.epoch != p.Epoch {
				return fmt.Errorf("%w: invitation key %s for epoch %s", ErrInvitationUnknown, p.InviteKey.Fingerprint(), p.Epoch)
			}
			if p.Epoch != st.latestEpoch() {
				return fmt.Errorf("%w: invitation key %s was revoked by the rekey to epoch %s", ErrInvitationUnknown, p.InviteKey.Fingerprint(), st.latestEpoch())
			}
			if inv.account != nil && !inv.account.Equal(acct) {
				return fmt.Errorf("%w: invitation already used by account %s", ErrBadAuthorization, inv.account.Fingerprint())
			}
			a := acct
			inv.account = &a
		}
		if old := st.devices[w]; old == nil {
			st.devices[w] = p.Cert
		}
		ep.members[w] = true
	case MetaInvitationCreated:
		if err := memberOf(p.Epoch); err != nil {
			return err
		}
		if _, ok := st.invites[p.InviteKey]; !ok {
			st.invites[p.InviteKey] = &inviteInfo{epoch: p.Epoch}
		}
	case MetaChainKeys:
		if err := memberOf(p.Epoch); err != nil {
			return err
		}
		ref := chainRef{sender: w, epoch: p.Epoch}
		set := st.chainShared[ref]
		if set == nil {
			set = map[crypto.PublicKey]bool{}
			st.chainShared[ref] = set
		}
		for _, s := range p.Shares {
			set[s.Recipient] = true
		}
		g.openShares(e, d)
		if d.openErr != nil {
			return d.openErr
		}
		if d.openedChain != nil {
			if _, ok := st.myChains[ref]; !ok {
				st.myChains[ref] = *d.openedChain
			}
		}
	case MetaRekey:
		if err := memberOf(p.Epoch); err != nil {
			return err
		}
		if _, ok := st.epochs[p.NewEpoch]; ok {
			return fmt.Errorf("%w: epoch id %s reused", ErrConflict, p.NewEpoch)
		}
		own, _ := st.accountOf(w)
		for _, a := range p.Removed {
			if a.Equal(own) {
				return fmt.Errorf("%w: a rekey cannot remove its writer's account (leave instead)", ErrConflict)
			}
		}
		for _, a := range p.Removed {
			st.removed[a] = true
		}
		for _, c := range p.Cutoffs {
			if a, ok := st.accountOf(c.Device); ok && containsKey(p.Removed, a) {
				st.mergeCutoff(c)
			}
		}
		ep := &epochInfo{id: p.NewEpoch, parent: p.Epoch, members: map[crypto.PublicKey]bool{}}
		for _, s := range p.Shares {
			ep.sealedTo = append(ep.sealedTo, s.Recipient)
			if st.active(s.Recipient) {
				ep.members[s.Recipient] = true
			}
		}
		st.epochs[p.NewEpoch] = ep
		st.epochOrder = append(st.epochOrder, p.NewEpoch)
		g.openShares(e, d)
		if d.openErr != nil {
			return d.openErr
		}
		if d.openedSecret != nil && ep.members[g.me.DeviceKey()] {
			ep.secret = d.openedSecret
		}
	case MetaMemberLeft:
		if !st.active(w) {
			return fmt.Errorf("%w: writer %s", ErrNotMember, w.Fingerprint())
		}
		own, _ := st.accountOf(w)
		st.removed[own] = true
		for _, c := range p.Cutoffs {
			if a, ok := st.accountOf(c.Device); ok && a.Equal(own) {
				st.mergeCutoff(c)
			}
		}
	case MetaAppMetadata:
		if err := memberOf(p.Epoch); err != nil {
			return err
		}
		am := AppMetadata{Writer: w, Epoch: p.Epoch, CID: e.CID()}
		if ep := st.epochs[p.Epoch]; ep.secret != nil || g.secrets[p.Epoch] != nil {
			s := ep.secret
			if s == nil {
				s = g.secrets[p.Epoch]
			}
			k := metaKey(g.id, s)
			pt, err := crypto.Open(&k, p.Sealed, appMetadataAD(g.id, p.Epoch, w))
			if err != nil {
				return fmt.Errorf("%w: app metadata: %v", ErrTampered, err)
			}
			am.Data = pt
		}
		st.app = append(st.app, am)
	}
	return nil
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
