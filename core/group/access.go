package group

import (
	"context"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// pendingState records what the metadata access check approved during the
// current Join, before the state is rebuilt: core/log calls CanWrite in
// causal order, so an entry by a device added earlier in the same Join
// finds that device here.
type pendingState struct {
	created  bool
	kind     Kind
	accounts []crypto.PublicKey
	devices  map[crypto.PublicKey]*crypto.DeviceCertificate
	invites  map[crypto.PublicKey]bool
}

func newPending() *pendingState {
	return &pendingState{devices: map[crypto.PublicKey]*crypto.DeviceCertificate{}, invites: map[crypto.PublicKey]bool{}}
}

// metaAccess is the metadata log's write-access check (docs/protocol.md (Groups),
// "Write access"). It needs no secret, so a replication node runs the same
// check.
type metaAccess struct{ g *Group }

var _ log.AccessController = metaAccess{}

func (a metaAccess) CanWrite(_ context.Context, e *log.Entry) error {
	g := a.g
	d := g.verifyMeta(e)
	if d.err != nil {
		return d.err
	}
	p, st, pend := d.payload, g.state, g.pending
	w := pub(e.Writer)
	// Admission into the log must depend only on what is certain once the
	// entry's causal past is in the log, never on what else this replica
	// happened to receive first: an entry one replica admitted and others
	// refused would make every later entry linking to it (by any writer)
	// refused by those others, for good. So a removal does not bar entries
	// here: whether an entry by a removed device was written before the
	// removal or concurrently with it is not decidable from the local
	// state. Removal is enforced where it is deterministic, on the whole
	// log in total order: rebuild (apply) ignores what a removed device
	// wrote after its removal, and openMessage refuses its messages past
	// the cutoffs.
	switch p.Type {
	case MetaGroupCreated:
		if !pend.created {
			pend.created, pend.accounts, pend.kind = true, p.Accounts, p.Kind
		}
	case MetaDeviceAdded:
		if !st.created && !pend.created {
			return fmt.Errorf("%w: device-added before any group-created", ErrNotMember)
		}
		acct := p.Cert.Account
		accounts, kind := st.accounts, st.kind
		if !st.created {
			accounts, kind = pend.accounts, pend.kind
		}
		if kind != KindMulti && !containsKey(accounts, acct) {
			return fmt.Errorf("%w: account %s may not join this %s group", ErrNotCertified, acct.Fingerprint(), kind)
		}
		if p.AuthType == AuthInvitation && st.invites[p.InviteKey] == nil && !pend.invites[p.InviteKey] {
			return fmt.Errorf("%w: invitation key %s", ErrInvitationUnknown, p.InviteKey.Fingerprint())
		}
		pend.devices[w] = p.Cert
	default:
		if st.devices[w] == nil && pend.devices[w] == nil {
			return fmt.Errorf("%w: %s written by device %s, which was never added", ErrNotMember, p.Type, w.Fingerprint())
		}
		if p.Type == MetaInvitationCreated {
			pend.invites[p.InviteKey] = true
		}
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
	ep := st.epochs[env.Epoch]
	if ep == nil {
		return nil, fmt.Errorf("%w: %s (%w)", ErrUnknownEpoch, env.Epoch, log.ErrNotYetAllowed)
	}
	if !ep.members[w] {
		return nil, fmt.Errorf("%w: writer %s is not a member of epoch %s (%w)", ErrNotMember, w.Fingerprint(), env.Epoch, log.ErrNotYetAllowed)
	}
	acct, _ := st.accountOf(w)
	removed := cutoffs && st.removed[acct]
	var cs *cutoffState
	if removed {
		cs = st.cutoffs[w]
		if cs == nil || e.Time > cs.msgTime {
			return nil, fmt.Errorf("%w: message by device %s at time %d, after its account was removed", ErrRemoved, w.Fingerprint(), e.Time)
		}
	}
	cm := &checkedMessage{env: env}
	secret := ep.secret
	if secret == nil {
		secret = g.secrets[env.Epoch]
	}
	if secret == nil {
		return cm, nil
	}
	hb, err := crypto.Open(g.headerKey(env.Epoch, secret), env.Header, headerAD(g.id, env.Epoch, w))
	if err != nil {
		return nil, fmt.Errorf("%w: header of a message by %s: %v", ErrTampered, w.Fingerprint(), err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, err
	}
	if !h.Sender.Equal(w) {
		return nil, fmt.Errorf("%w: header names sender %s, entry written by %s", ErrTampered, h.Sender.Fingerprint(), w.Fingerprint())
	}
	if removed && h.Index >= cs.limits[env.Epoch] {
		return nil, fmt.Errorf("%w: message index %d by device %s in epoch %s is past the cutoff %d", ErrRemoved, h.Index, w.Fingerprint(), env.Epoch, cs.limits[env.Epoch])
	}
	cm.header = h
	return cm, nil
}
