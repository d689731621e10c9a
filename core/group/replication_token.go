package group

import (
	"fmt"
)

// Bounds of a ReplicationNodeToken.
const (
	// MaxNodePeerLen bounds the peer id in a replication-node token.
	MaxNodePeerLen = 128
	// MaxNodeAddrs bounds the addresses in a replication-node token.
	MaxNodeAddrs = 8
	// MaxNodeAddrLen bounds one address in a replication-node token.
	MaxNodeAddrLen = 256
)

// ReplicationNodeToken is what the operator of an always-on replication
// node gives the members allowed to register groups with it: where to
// reach the node (its network peer id and addresses) and the secret that
// authorizes a registration. It is a bearer secret: whoever holds it can
// make the node store and serve a group's (encrypted) logs. Printing it
// shows the peer only; Token returns the text form.
type ReplicationNodeToken struct {
	Peer   string
	Addrs  []string
	Secret [32]byte
}

// MarshalBinary encodes the token payload (without type and checksum).
func (t *ReplicationNodeToken) MarshalBinary() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	w := wireWriter{}
	w.bytes([]byte(t.Peer))
	w.uvarint(uint64(len(t.Addrs)))
	for _, a := range t.Addrs {
		w.bytes([]byte(a))
	}
	w.raw(t.Secret[:])
	return w.b, nil
}

func (t *ReplicationNodeToken) check() error {
	return checkNodeContact("replication-node token", t.Peer, t.Addrs)
}

// Token returns the text form: TokenPrefix followed by base32 of type ||
// payload || checksum. Addresses are dropped from the end until the text
// fits MaxTokenLen; an invalid token gives "".
func (t *ReplicationNodeToken) Token() string {
	c := *t
	return encodeFitting(tokenReplicationNode, len(t.Addrs), func(keep int) ([]byte, error) {
		c.Addrs = t.Addrs[:keep]
		return c.MarshalBinary()
	})
}

// String names the peer only, never the secret.
func (t *ReplicationNodeToken) String() string {
	return fmt.Sprintf("ReplicationNodeToken(peer %s, %d addresses)", t.Peer, len(t.Addrs))
}

// GoString is the same as String.
func (t *ReplicationNodeToken) GoString() string { return t.String() }

// Format prints String for every verb, so no verb reveals the secret.
func (t *ReplicationNodeToken) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }

// ParseReplicationNodeToken decodes a replication-node token; errors wrap
// the ErrToken* sentinels like ParseInvitation's.
func ParseReplicationNodeToken(token string) (*ReplicationNodeToken, error) {
	p, err := decodeToken(token, tokenReplicationNode)
	if err != nil {
		return nil, err
	}
	r := wireReader{b: p, what: "replication-node token"}
	t := &ReplicationNodeToken{}
	t.Peer = string(r.bytes("peer", MaxNodePeerLen))
	n := r.count("addresses", MaxNodeAddrs)
	for i := 0; i < n && r.err == nil; i++ {
		t.Addrs = append(t.Addrs, string(r.bytes("address", MaxNodeAddrLen)))
	}
	r.fixed("secret", t.Secret[:])
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("parse replication-node token: %w: %v", ErrTokenMalformed, r.err)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("parse %w", err)
	}
	return t, nil
}
