package group

import (
	"context"
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
)

// ContactToken returns this account's contact token with a display name.
// It needs the account key and the contact key.
func (id *Identity) ContactToken(name string) (*ContactToken, error) {
	if id.Account == nil || id.ContactKey == nil {
		return nil, fmt.Errorf("contact token: %w: the account and contact keys are needed", ErrNotMember)
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("contact token: %w", err)
	}
	t := &ContactToken{Account: id.Account.Public(), ContactKey: id.ContactKey.Public(), Name: name}
	sig, err := id.Account.Sign(domainContactToken, t.signedPart())
	if err != nil {
		return nil, fmt.Errorf("contact token: %w", err)
	}
	copy(t.Signature[:], sig)
	return t, nil
}

// RequestContact is B's side of a contact request: from A's token it
// builds the request to deliver to A (by any channel) and opens the
// contact group both sides derive, with B's device in it. B can send as
// soon as A has accepted and the two replicas have exchanged heads.
func RequestContact(ctx context.Context, id *Identity, token *ContactToken, name string, st Storage, opts ...Option) (*ContactRequest, *Group, error) {
	if token == nil {
		return nil, nil, fmt.Errorf("request contact: %w: nil token", ErrTokenMalformed)
	}
	if err := token.Verify(); err != nil {
		return nil, nil, fmt.Errorf("request contact: %w", err)
	}
	if id.Account == nil || id.ContactKey == nil {
		return nil, nil, fmt.Errorf("request contact: %w: the account and contact keys are needed", ErrNotMember)
	}
	if token.Account.Equal(id.Account.Public()) {
		return nil, nil, fmt.Errorf("request contact: %w: this is your own contact token", ErrConflict)
	}
	if err := checkName(name); err != nil {
		return nil, nil, fmt.Errorf("request contact: %w", err)
	}
	q := &ContactRequest{From: id.Account.Public(), ContactKey: id.ContactKey.Public(), To: token.Account, Name: name}
	sig, err := id.Account.Sign(domainContactRequest, q.signedPart())
	if err != nil {
		return nil, nil, fmt.Errorf("request contact: %w", err)
	}
	copy(q.Signature[:], sig)
	g, err := openContact(ctx, id, token.Account, token.ContactKey, st, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("request contact: %w", err)
	}
	return q, g, nil
}

// AcceptContact is A's side: it verifies B's request (signature, and that
// it is addressed to this account) and opens the same contact group.
func AcceptContact(ctx context.Context, id *Identity, req *ContactRequest, st Storage, opts ...Option) (*Group, error) {
	if req == nil {
		return nil, fmt.Errorf("accept contact: %w: nil request", ErrTokenMalformed)
	}
	if err := req.Verify(); err != nil {
		return nil, fmt.Errorf("accept contact: %w", err)
	}
	if id.Account == nil || id.ContactKey == nil {
		return nil, fmt.Errorf("accept contact: %w: the account and contact keys are needed", ErrNotMember)
	}
	if !req.To.Equal(id.Account.Public()) {
		return nil, fmt.Errorf("accept contact from %s: %w: request is addressed to account %s", req.From.Fingerprint(), ErrWrongGroup, req.To.Fingerprint())
	}
	g, err := openContact(ctx, id, req.From, req.ContactKey, st, opts)
	if err != nil {
		return nil, fmt.Errorf("accept contact from %s: %w", req.From.Fingerprint(), err)
	}
	return g, nil
}

// ContactGroupID returns the id of the contact group between this account
// and a peer, as both sides derive it.
func ContactGroupID(id *Identity, peerAccount crypto.PublicKey, peerContact crypto.X25519PublicKey) (crypto.PublicKey, error) {
	seed, secret, err := contactGroupKeys(id.ContactKey, id.Account.Public(), peerContact, peerAccount)
	clear(secret[:])
	if err != nil {
		return crypto.PublicKey{}, err
	}
	gk, err := crypto.NewSigningKeyFromSeed(seed[:])
	clear(seed[:])
	if err != nil {
		return crypto.PublicKey{}, err
	}
	return gk.Public(), nil
}

func openContact(ctx context.Context, id *Identity, peerAccount crypto.PublicKey, peerContact crypto.X25519PublicKey, st Storage, opts []Option) (*Group, error) {
	seed, secret, err := contactGroupKeys(id.ContactKey, id.Account.Public(), peerContact, peerAccount)
	if err != nil {
		return nil, err
	}
	gk, err := crypto.NewSigningKeyFromSeed(seed[:])
	clear(seed[:])
	if err != nil {
		return nil, err
	}
	g, err := openGroup(ctx, id, KindContact, gk.Public(), gk, st, opts)
	if err != nil {
		return nil, err
	}
	accounts := []crypto.PublicKey{id.Account.Public(), peerAccount}
	if compareKeys(accounts[1], accounts[0]) < 0 {
		accounts[0], accounts[1] = accounts[1], accounts[0]
	}
	if err := g.found(ctx, accounts, secret); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}
