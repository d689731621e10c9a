package group

import (
	"context"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// admission is what metadata entries admitted into the log establish for
// the admission of later ones, whatever the membership state makes of them
// (the state may refuse an admitted entry, e.g. a device-added whose
// invitation another account used first). It only grows. Admission looks
// here, never at the state: every entry's causal past is in the log before
// it, so whether an entry enters a replica's log depends on that past
// only, not on what else the replica received first. (A check against the
// state made a replica that received an entry in one join admit what a
// replica that received it in two refused, splitting their logs.)
type admission struct {
	created  bool
	kind     Kind
	accounts map[crypto.PublicKey]bool // named by a group-created
	devices  map[crypto.PublicKey]bool // with a device-added
	invites  map[crypto.PublicKey]bool // registered by an invitation-created
}

func newAdmission() *admission {
	return &admission{accounts: map[crypto.PublicKey]bool{}, devices: map[crypto.PublicKey]bool{}, invites: map[crypto.PublicKey]bool{}}
}

// add records what an admitted entry establishes.
func (a *admission) add(it *metaItem) {
	if it.err != nil {
		return
	}
	switch it.typ {
	case MetaGroupCreated:
		if !a.created {
			a.created, a.kind = true, it.p.Kind
		}
		for _, acct := range it.p.Accounts {
			a.accounts[acct] = true
		}
	case MetaDeviceAdded:
		a.devices[it.writer] = true
	case MetaInvitationCreated:
		a.invites[it.key] = true
	}
}

// metaAccess is the metadata log's write-access check (docs/protocol.md (Groups),
// "Write access"). It needs no secret, so a replication node runs the same
// check.
type metaAccess struct{ g *Group }

var _ log.AccessController = metaAccess{}

// CanWrite checks e against what the log admitted before (g.admitted) and
// what this join approved so far (g.pending: core/log calls CanWrite in
// causal order, so an entry by a device added earlier in the same join
// finds that device there).
func (a metaAccess) CanWrite(_ context.Context, e *log.Entry) error {
	g := a.g
	it := g.itemFor(e)
	if it.err != nil {
		return it.err
	}
	adm, pend := g.admitted, g.pending
	w := it.writer
	// Removals do not bar entries here: whether an entry by a removed
	// device was written before the removal or concurrently with it is not
	// decidable from the local state. Removal is enforced where it is
	// deterministic, on the whole log in total order: the state (fold.go)
	// ignores what a removed device wrote after its removal, and
	// openMessage refuses its messages past the cutoffs.
	switch it.typ {
	case MetaGroupCreated:
		pend.add(it)
	case MetaDeviceAdded:
		if !adm.created && !pend.created {
			return fmt.Errorf("%w: device-added before any group-created", ErrNotMember)
		}
		kind := g.knownKind
		if kind == 0 {
			kind = adm.kind
			if !adm.created {
				kind = pend.kind
			}
		}
		acct := it.cert.Account
		if kind != KindMulti && !adm.accounts[acct] && !pend.accounts[acct] {
			return fmt.Errorf("%w: account %s may not join this %s group", ErrNotCertified, acct.Fingerprint(), kind)
		}
		if it.authType == AuthInvitation && !adm.invites[it.key] && !pend.invites[it.key] {
			return fmt.Errorf("%w: invitation key %s", ErrInvitationUnknown, it.key.Fingerprint())
		}
		pend.add(it)
	default:
		if !adm.devices[w] && !pend.devices[w] {
			return fmt.Errorf("%w: %s written by device %s, which was never added", ErrNotMember, it.typ, w.Fingerprint())
		}
		pend.add(it)
	}
	return nil
}

// msgAccess is the message log's write-access check. Without the epoch
// secret (a replication node) it checks the envelope, the epoch, the
// writer's membership and the removal cutoff by Lamport time; with the
// secret (a member) it also opens the header and checks the sender and the
// ratchet-index cutoff.
type msgAccess struct{ g *Group }

var _ log.AccessController = msgAccess{}

func (a msgAccess) CanWrite(_ context.Context, e *log.Entry) error {
	_, err := a.g.checkMessageEntry(e, false)
	return err
}

// checkedMessage caches what checkMessage found about one message entry.
type checkedMessage struct {
	env    *Envelope
	epoch  EpochID
	header *Header // nil when the epoch secret is not held
}

// checkMessage applies the message access rules with the current state,
// removal cutoffs included.
func (g *Group) checkMessage(e *log.Entry) (*checkedMessage, error) {
	return g.checkMessageEntry(e, true)
}

// checkMessageEntry applies the message access rules; cutoffs says whether
// the removal cutoffs apply. The log's admission check leaves them out (see
// metaAccess.CanWrite: a message concurrent with its sender's removal may be
// admitted by one replica before it learns of the removal, so refusing it
// elsewhere would split the logs); openMessage applies them, on every
// replica alike, before anything is delivered.
func (g *Group) checkMessageEntry(e *log.Entry, cutoffs bool) (*checkedMessage, error) {
	env, err := DecodeEnvelope(e.Payload)
	if err != nil {
		return nil, err
	}
	st := g.state
	w := pub(e.Writer)
	epoch, err := openEpoch(g.keys, g.id, w, env)
	if err != nil {
		return nil, err
	}
	if st.epochs[epoch] == nil {
		return nil, fmt.Errorf("%w: %s (%w)", ErrUnknownEpoch, epoch, log.ErrNotYetAllowed)
	}
	if !st.member(epoch, w) {
		return nil, fmt.Errorf("%w: writer %s is not a member of epoch %s (%w)", ErrNotMember, w.Fingerprint(), epoch, log.ErrNotYetAllowed)
	}
	acct, _ := st.accountOf(w)
	removed := cutoffs && (st.isRemoved(acct) || st.removedDevs[devIDOf(w)] > 0)
	var cs *cutoffState
	if removed {
		cs = st.cutoffs[w]
		if cs == nil || e.Time > cs.msgTime {
			return nil, fmt.Errorf("%w: message by device %s at time %d, after its account was removed", ErrRemoved, w.Fingerprint(), e.Time)
		}
	}
	cm := &checkedMessage{env: env, epoch: epoch}
	secret := g.secrets[epoch]
	if secret == nil {
		return cm, nil
	}
	var hb []byte
	if env.Version == envelopeVersion3 {
		hb, err = g.suite.Open(g.headerKey(epoch, secret), env.Header, headerAD(g.id, epoch, w))
	} else {
		hk := headerOnceKey(g.headerKey(epoch, secret), &env.SealedEpoch)
		hb, err = g.suite.OpenOnce(&hk, env.Header, headerAD(g.id, epoch, w))
		clear(hk[:])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header of a message by %s: %v", ErrTampered, w.Fingerprint(), err)
	}
	// The header opened under an associated data naming w: w is its sender.
	h, err := decodeHeader(hb, env.Version, w)
	if err != nil {
		return nil, err
	}
	if removed && h.Index >= cs.limits[epoch] {
		return nil, fmt.Errorf("%w: message index %d by device %s in epoch %s is past the cutoff %d", ErrRemoved, h.Index, w.Fingerprint(), epoch, cs.limits[epoch])
	}
	cm.header = h
	return cm, nil
}
