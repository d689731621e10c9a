package group

import (
	"fmt"
	"unicode/utf8"
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
	switch {
	case t.Peer == "" || len(t.Peer) > MaxNodePeerLen || !utf8.ValidString(t.Peer):
		return fmt.Errorf("replication-node token: %w: peer id must be 1 to %d bytes of text", ErrTokenMalformed, MaxNodePeerLen)
	case len(t.Addrs) > MaxNodeAddrs:
		return fmt.Errorf("replication-node token: %w: %d addresses, at most %d", ErrTokenMalformed, len(t.Addrs), MaxNodeAddrs)
	}
	for i, a := range t.Addrs {
		if a == "" || len(a) > MaxNodeAddrLen || !utf8.ValidString(a) {
			return fmt.Errorf("replication-node token: %w: address %d must be 1 to %d bytes of text", ErrTokenMalformed, i, MaxNodeAddrLen)
		}
	}
	return nil
}

// Token returns the text form: TokenPrefix followed by base32 of type ||
// payload || checksum. Addresses are dropped from the end until the text
// fits MaxTokenLen; an invalid token gives "".
func (t *ReplicationNodeToken) Token() string {
	c := *t
	for {
		p, err := c.MarshalBinary()
		if err != nil {
			return ""
		}
		s := encodeToken(tokenReplicationNode, p)
		if len(s) <= MaxTokenLen || len(c.Addrs) == 0 {
			return s
		}
		c.Addrs = c.Addrs[:len(c.Addrs)-1]
	}
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
