package group

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
)

// ErrTokenExpired: a link token's validity ended. It is final: make a new
// one on a device of the account.
var ErrTokenExpired = errors.New("token expired")

// LinkIDSize is the length of a link token's id.
const LinkIDSize = 16

// LinkToken is what a device of an account shows (as text or QR) to link a
// new device to the account: where to reach it, the account it links to,
// a one-time secret and when the token expires. It is a bearer secret for
// a short time: whoever holds it before the new device does gets the
// account key. Printing it shows the account and peer only; Token returns
// the text form.
type LinkToken struct {
	Account crypto.PublicKey
	Peer    string
	Addrs   []string
	Expires time.Time // one-second precision
	Secret  [32]byte
}

// MarshalBinary encodes the token payload (without type and checksum):
// account(32) || uint64be(expires, Unix seconds) || bytes(peer) ||
// uvarint(n) || n × bytes(addr) || secret(32).
func (t *LinkToken) MarshalBinary() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	w := wireWriter{}
	w.raw(t.Account[:])
	w.uint64be(uint64(t.Expires.Unix()))
	w.bytes([]byte(t.Peer))
	w.uvarint(uint64(len(t.Addrs)))
	for _, a := range t.Addrs {
		w.bytes([]byte(a))
	}
	w.raw(t.Secret[:])
	return w.b, nil
}

func (t *LinkToken) check() error {
	switch {
	case t.Account.IsZero():
		return fmt.Errorf("link token: %w: no account", ErrTokenMalformed)
	case t.Expires.Unix() <= 0:
		return fmt.Errorf("link token: %w: no expiry", ErrTokenMalformed)
	}
	return checkNodeContact("link token", t.Peer, t.Addrs)
}

// Token returns the text form. Addresses are dropped from the end until
// the text fits MaxTokenLen; an invalid token gives "".
func (t *LinkToken) Token() string {
	c := *t
	return encodeFitting(tokenLink, len(t.Addrs), func(keep int) ([]byte, error) {
		c.Addrs = t.Addrs[:keep]
		return c.MarshalBinary()
	})
}

// ID is the token's public name: a hash of its secret, which the new
// device sends so the linking device finds the token without the secret
// crossing the network.
func (t *LinkToken) ID() [LinkIDSize]byte {
	h := sha256.New()
	h.Write([]byte("skein/v1/device-link/id\x00"))
	h.Write(t.Secret[:])
	var id [LinkIDSize]byte
	copy(id[:], h.Sum(nil))
	return id
}

// Key derives the token's key for one direction of the link protocol
// ("request" or "response").
func (t *LinkToken) Key(direction string) ([32]byte, error) {
	id := t.ID()
	return crypto.DeriveKey(t.Secret[:], id[:], "skein/v1/device-link/"+direction)
}

// CheckExpiry returns an error wrapping ErrTokenExpired if the token has
// expired at now.
func (t *LinkToken) CheckExpiry(now time.Time) error {
	if !now.Before(t.Expires) {
		return fmt.Errorf("link token: %w at %s (%s ago); make a new one with skein device link",
			ErrTokenExpired, t.Expires.UTC().Format(time.RFC3339), now.Sub(t.Expires).Round(time.Second))
	}
	return nil
}

// String names the account and peer only, never the secret.
func (t *LinkToken) String() string {
	return fmt.Sprintf("LinkToken(account %s, peer %s, expires %s)", t.Account.Fingerprint(), t.Peer, t.Expires.UTC().Format(time.RFC3339))
}

// GoString is the same as String.
func (t *LinkToken) GoString() string { return t.String() }

// Format prints String for every verb, so no verb reveals the secret.
func (t *LinkToken) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }

// ParseLinkToken decodes a link token; errors wrap the ErrToken* sentinels
// like ParseInvitation's. It does not check expiry (CheckExpiry).
func ParseLinkToken(token string) (*LinkToken, error) {
	p, err := decodeToken(token, tokenLink)
	if err != nil {
		return nil, err
	}
	r := wireReader{b: p, what: "link token"}
	t := &LinkToken{}
	r.fixed("account", t.Account[:])
	exp := r.uint64be("expires")
	t.Peer = string(r.bytes("peer", MaxNodePeerLen))
	n := r.count("addresses", MaxNodeAddrs)
	for i := 0; i < n && r.err == nil; i++ {
		t.Addrs = append(t.Addrs, string(r.bytes("address", MaxNodeAddrLen)))
	}
	r.fixed("secret", t.Secret[:])
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("parse link token: %w: %v", ErrTokenMalformed, r.err)
	}
	if exp == 0 || exp > 1<<40 {
		return nil, fmt.Errorf("parse link token: %w: expiry %d out of range", ErrTokenMalformed, exp)
	}
	t.Expires = time.Unix(int64(exp), 0)
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("parse %w", err)
	}
	return t, nil
}
