package group

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/skein-p2p/skein/core/crypto"
)

// TokenPrefix starts every Skein text token. The digit is the token format
// version.
const TokenPrefix = "skein1-"

// Token types: the first byte of a token's binary payload.
const (
	tokenInvitation      byte = 1
	tokenContact         byte = 2
	tokenContactRequest  byte = 3
	tokenReplicationNode byte = 4
	tokenLink            byte = 5 // link_token.go
)

const (
	tokenChecksumSize = 4
	tokenChecksumTag  = "skein/v1/token\x00"
	// MaxNameLen is the longest display name a contact token or request
	// carries, in bytes of UTF-8.
	MaxNameLen = 64
	// MaxTokenLen bounds the text accepted by the token parsers, so a huge
	// paste is refused before any work.
	MaxTokenLen = 1024
)

// Signature domains of tokens.
const (
	domainContactToken   = "skein/v1/contact-token"
	domainContactRequest = "skein/v1/contact-request"
)

var tokenBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func tokenTypeName(t byte) string {
	switch t {
	case tokenInvitation:
		return "invitation"
	case tokenContact:
		return "contact token"
	case tokenContactRequest:
		return "contact request"
	case tokenReplicationNode:
		return "replication-node token"
	case tokenLink:
		return "link token"
	}
	return fmt.Sprintf("unknown type %d", t)
}

// withArticle puts "a" or "an" before a token type's name.
func withArticle(name string) string {
	if name != "" && strings.ContainsRune("aeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

// minTokenBody is the shortest binary body (type byte .. checksum) of each
// token type, used to tell a truncated token from a corrupt one.
func minTokenBody(t byte) int {
	switch t {
	case tokenInvitation:
		return 1 + invitationFixedLen + tokenChecksumSize
	case tokenContact:
		return 1 + 32 + 32 + 1 + crypto.SignatureSize + tokenChecksumSize
	case tokenContactRequest:
		return 1 + 32 + 32 + 32 + 1 + crypto.SignatureSize + tokenChecksumSize
	case tokenReplicationNode:
		return 1 + 1 + 1 + 1 + 32 + tokenChecksumSize
	case tokenLink:
		return 1 + 32 + 8 + 1 + 1 + 1 + 32 + tokenChecksumSize
	}
	return 1 + tokenChecksumSize
}

func tokenChecksum(body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(tokenChecksumTag))
	h.Write(body)
	return h.Sum(nil)[:tokenChecksumSize]
}

// encodeToken returns TokenPrefix || base32(type || payload || checksum).
// encodeFitting encodes a token whose payload names n addresses: marshal
// gives the payload with the first keep of them. Addresses are dropped
// from the end until the text fits MaxTokenLen; a payload that does not
// marshal gives "".
func encodeFitting(typ byte, n int, marshal func(keep int) ([]byte, error)) string {
	for keep := n; ; keep-- {
		p, err := marshal(keep)
		if err != nil {
			return ""
		}
		if s := encodeToken(typ, p); len(s) <= MaxTokenLen || keep == 0 {
			return s
		}
	}
}

// checkNodeContact checks the peer id and addresses a token gives to
// reach a node; what names the token in errors.
func checkNodeContact(what, peer string, addrs []string) error {
	switch {
	case peer == "" || len(peer) > MaxNodePeerLen || !utf8.ValidString(peer):
		return fmt.Errorf("%s: %w: peer id must be 1 to %d bytes of text", what, ErrTokenMalformed, MaxNodePeerLen)
	case len(addrs) > MaxNodeAddrs:
		return fmt.Errorf("%s: %w: %d addresses, at most %d", what, ErrTokenMalformed, len(addrs), MaxNodeAddrs)
	}
	for i, a := range addrs {
		if a == "" || len(a) > MaxNodeAddrLen || !utf8.ValidString(a) {
			return fmt.Errorf("%s: %w: address %d must be 1 to %d bytes of text", what, ErrTokenMalformed, i, MaxNodeAddrLen)
		}
	}
	return nil
}

func encodeToken(typ byte, payload []byte) string {
	body := make([]byte, 0, 1+len(payload)+tokenChecksumSize)
	body = append(body, typ)
	body = append(body, payload...)
	body = append(body, tokenChecksum(body)...)
	return TokenPrefix + tokenBase32.EncodeToString(body)
}

// decodeToken checks prefix, alphabet, length and checksum and returns the
// payload of a token of type want. Whitespace anywhere (line breaks from a
// copy) is ignored; case is ignored, so the upper-case QR form decodes too.
func decodeToken(text string, want byte) ([]byte, error) {
	name := tokenTypeName(want)
	if len(text) > MaxTokenLen {
		return nil, fmt.Errorf("parse %s: %w: %d characters, longer than any token (%d)", name, ErrTokenMalformed, len(text), MaxTokenLen)
	}
	clean := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, text)
	if !strings.HasPrefix(clean, TokenPrefix) {
		if clean == "" {
			return nil, fmt.Errorf("parse %s: %w: empty text", name, ErrTokenPrefix)
		}
		return nil, fmt.Errorf("parse %s: %w", name, ErrTokenPrefix)
	}
	enc := clean[len(TokenPrefix):]
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return nil, fmt.Errorf("parse %s: %w at position %d (after the prefix): only a-z and 2-7 are allowed", name, ErrTokenEncoding, i)
		}
	}
	body, err := tokenBase32.DecodeString(enc)
	if err != nil {
		// Only a bad length is left (a cut in the middle of a character group).
		return nil, fmt.Errorf("parse %s: %w: %d characters cannot be a whole token", name, ErrTokenTruncated, len(enc))
	}
	if len(body) < 1+tokenChecksumSize {
		return nil, fmt.Errorf("parse %s: %w: %d bytes", name, ErrTokenTruncated, len(body))
	}
	if len(body) < minTokenBody(body[0]) && (body[0] == want) {
		return nil, fmt.Errorf("parse %s: %w: %d bytes, want at least %d", name, ErrTokenTruncated, len(body), minTokenBody(body[0]))
	}
	if tokenBase32.EncodeToString(body) != enc {
		// A length no encoder produces, or unused bits set in the last
		// character: a change there would otherwise go unnoticed.
		return nil, fmt.Errorf("parse %s: %w: the token was changed, cut or extended; copy it again", name, ErrTokenChecksum)
	}
	n := len(body) - tokenChecksumSize
	if !bytes.Equal(tokenChecksum(body[:n]), body[n:]) {
		return nil, fmt.Errorf("parse %s: %w: the token was changed, cut or extended; copy it again", name, ErrTokenChecksum)
	}
	if body[0] != want {
		return nil, fmt.Errorf("parse %s: %w: this is %s", name, ErrTokenType, withArticle(tokenTypeName(body[0])))
	}
	return body[1:n], nil
}

func checkName(n string) error {
	if len(n) > MaxNameLen {
		return fmt.Errorf("name is %d bytes, longer than %d", len(n), MaxNameLen)
	}
	if !utf8.ValidString(n) {
		return fmt.Errorf("name is not valid UTF-8")
	}
	for _, r := range n {
		if unicode.IsControl(r) {
			return fmt.Errorf("name contains a control character")
		}
	}
	return nil
}

// ---- invitation ----

// invitationFixedLen is the invitation payload length without the optional
// group seed: kind(1) group(32) epoch(16) secret(32) invite seed(32)
// replication key(32) flags(1).
const invitationFixedLen = 1 + 32 + EpochIDSize + 32 + 32 + 32 + 1

const (
	invitationFlagGroupSeed = 0x01
	invitationFlagSuite     = 0x02 // a crypto suite name follows: uvarint length || name
)

// maxSuiteName bounds a crypto suite name in an invitation.
const maxSuiteName = 64

// Invitation is everything a device needs to join a group: the group's
// public key and kind, the current epoch and its secret, and a one-account
// invitation key registered in the metadata log whose private half
// authorizes the joiner's own device-added entry. An account-group
// invitation also carries the group's private seed (the devices of one
// account trust each other fully).
//
// An Invitation is a bearer secret: whoever holds the token can join (as one
// account) and read the epoch's messages. Printing it shows only the group
// fingerprint; Token returns the text form.
type Invitation struct {
	Kind   Kind
	Group  crypto.PublicKey
	Epoch  EpochID
	Secret [32]byte
	// InviteSeed is the Ed25519 seed of the invitation key.
	InviteSeed [32]byte
	// ReplicationKey is the group's replication key (see
	// Group.ReplicationKey): it names the group's pubsub topic and log
	// wire ids, so the joiner can find the members' announcements.
	ReplicationKey [32]byte
	// GroupSeed is the group key's seed, only in account-group invitations.
	GroupSeed []byte
	// Suite names the group's crypto suite when it is not the default
	// (group.WithSuite); "" is crypto.DefaultSuite(). Default-suite
	// tokens carry no suite, so they are those of before suites.
	Suite string
}

// SuiteName returns the name of the invitation's crypto suite.
func (inv *Invitation) SuiteName() string {
	if inv.Suite == "" {
		return crypto.DefaultSuite().Name()
	}
	return inv.Suite
}

// InviteKey returns the invitation's public key, as registered in the
// metadata log.
func (inv *Invitation) InviteKey() (crypto.PublicKey, error) {
	k, err := crypto.NewSigningKeyFromSeed(inv.InviteSeed[:])
	if err != nil {
		return crypto.PublicKey{}, err
	}
	return k.Public(), nil
}

// MarshalBinary encodes the invitation payload (without type and checksum).
func (inv *Invitation) MarshalBinary() ([]byte, error) {
	w := wireWriter{b: make([]byte, 0, invitationFixedLen+32)}
	w.byte1(byte(inv.Kind))
	w.raw(inv.Group[:])
	w.raw(inv.Epoch[:])
	w.raw(inv.Secret[:])
	w.raw(inv.InviteSeed[:])
	w.raw(inv.ReplicationKey[:])
	if len(inv.Suite) > maxSuiteName {
		return nil, fmt.Errorf("invitation: suite name of %d bytes, at most %d", len(inv.Suite), maxSuiteName)
	}
	flags := byte(0)
	if len(inv.GroupSeed) > 0 {
		flags |= invitationFlagGroupSeed
	}
	if inv.Suite != "" {
		flags |= invitationFlagSuite
	}
	w.byte1(flags)
	if len(inv.GroupSeed) > 0 {
		w.raw(inv.GroupSeed)
	}
	if inv.Suite != "" {
		w.bytes([]byte(inv.Suite))
	}
	return w.b, nil
}

// Token returns the copy-pasteable text form: TokenPrefix followed by
// lower-case base32 of type || payload || checksum.
func (inv *Invitation) Token() string {
	p, _ := inv.MarshalBinary()
	return encodeToken(tokenInvitation, p)
}

// String prints the group fingerprint only, never the secrets.
func (inv *Invitation) String() string {
	return fmt.Sprintf("Invitation(%s group %s)", inv.Kind, inv.Group.Fingerprint())
}

// GoString is the same as String.
func (inv *Invitation) GoString() string { return inv.String() }

// Format prints String for every verb, so no verb reveals the secrets.
func (inv *Invitation) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(inv.String())) }

// ParseInvitation decodes an invitation token. A wrong prefix, a bad
// character, a truncated or corrupted token, a token of another type or a
// malformed content each give an error wrapping the matching ErrToken*.
func ParseInvitation(token string) (*Invitation, error) {
	p, err := decodeToken(token, tokenInvitation)
	if err != nil {
		return nil, err
	}
	return decodeInvitation(p)
}

func decodeInvitation(p []byte) (*Invitation, error) {
	r := wireReader{b: p, what: "invitation"}
	inv := &Invitation{}
	inv.Kind = Kind(r.byte1("kind"))
	r.fixed("group", inv.Group[:])
	r.fixed("epoch", inv.Epoch[:])
	r.fixed("secret", inv.Secret[:])
	r.fixed("invite seed", inv.InviteSeed[:])
	r.fixed("replication key", inv.ReplicationKey[:])
	flags := r.byte1("flags")
	if r.err == nil && flags&^(invitationFlagGroupSeed|invitationFlagSuite) != 0 {
		r.fail("flags", "unknown flags %#x", flags)
	}
	if r.err == nil && flags&invitationFlagGroupSeed != 0 {
		inv.GroupSeed = make([]byte, crypto.SeedSize)
		r.fixed("group seed", inv.GroupSeed)
	}
	if r.err == nil && flags&invitationFlagSuite != 0 {
		name := r.bytes("suite", maxSuiteName)
		switch {
		case r.err != nil:
		case len(name) == 0 || !utf8.Valid(name):
			r.fail("suite", "must be 1 to %d bytes of text", maxSuiteName)
		case string(name) == crypto.DefaultSuite().Name():
			r.fail("suite", "the default suite is not written (one token per invitation)")
		default:
			inv.Suite = string(name)
		}
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("parse invitation: %w: %v", ErrTokenMalformed, r.err)
	}
	if !inv.Kind.valid() {
		return nil, fmt.Errorf("parse invitation: %w: unknown group kind %d", ErrTokenMalformed, inv.Kind)
	}
	if inv.GroupSeed != nil {
		if inv.Kind != KindAccount {
			return nil, fmt.Errorf("parse invitation: %w: a %s invitation carries a group seed", ErrTokenMalformed, inv.Kind)
		}
		gk, err := crypto.NewSigningKeyFromSeed(inv.GroupSeed)
		if err != nil || !gk.Public().Equal(inv.Group) {
			return nil, fmt.Errorf("parse invitation: %w: group seed does not match the group key", ErrTokenMalformed)
		}
	}
	return inv, nil
}

// ---- contact token and request ----

// ContactToken is what an account shares so others can ask to become its
// contact: its account key, its contact key-agreement key and a display
// name, signed by the account. It holds no secret.
type ContactToken struct {
	Account crypto.PublicKey
	// ContactKey is the account's X25519 contact key.
	ContactKey crypto.X25519PublicKey
	Name       string
	Signature  [crypto.SignatureSize]byte
}

func (t *ContactToken) signedPart() []byte {
	w := wireWriter{}
	w.byte1(tokenContact)
	w.raw(t.Account[:])
	w.raw(t.ContactKey[:])
	w.bytes([]byte(t.Name))
	return w.b
}

// MarshalBinary encodes the token payload.
func (t *ContactToken) MarshalBinary() ([]byte, error) {
	b := t.signedPart()[1:]
	return append(b, t.Signature[:]...), nil
}

// Token returns the text form.
func (t *ContactToken) Token() string {
	p, _ := t.MarshalBinary()
	return encodeToken(tokenContact, p)
}

// Verify checks the account's signature.
func (t *ContactToken) Verify() error {
	if err := t.Account.Verify(domainContactToken, t.signedPart(), t.Signature[:]); err != nil {
		return fmt.Errorf("contact token of %s: %w: %v", t.Account.Fingerprint(), ErrTokenMalformed, err)
	}
	return nil
}

// ParseContactToken decodes and verifies a contact token.
func ParseContactToken(token string) (*ContactToken, error) {
	p, err := decodeToken(token, tokenContact)
	if err != nil {
		return nil, err
	}
	return decodeContactToken(p)
}

func decodeContactToken(p []byte) (*ContactToken, error) {
	r := wireReader{b: p, what: "contact token"}
	t := &ContactToken{}
	r.fixed("account", t.Account[:])
	r.fixed("contact key", t.ContactKey[:])
	t.Name = string(r.bytes("name", MaxNameLen))
	r.fixed("signature", t.Signature[:])
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("parse contact token: %w: %v", ErrTokenMalformed, r.err)
	}
	if err := checkName(t.Name); err != nil {
		return nil, fmt.Errorf("parse contact token: %w: %v", ErrTokenMalformed, err)
	}
	if err := t.Verify(); err != nil {
		return nil, fmt.Errorf("parse contact token: %w", err)
	}
	return t, nil
}

// ContactRequest is what B sends to A (by any channel) after reading A's
// contact token: B's account and contact key, A's account, B's display name,
// signed by B's account.
type ContactRequest struct {
	From       crypto.PublicKey
	ContactKey crypto.X25519PublicKey
	To         crypto.PublicKey
	Name       string
	Signature  [crypto.SignatureSize]byte
}

func (q *ContactRequest) signedPart() []byte {
	w := wireWriter{}
	w.byte1(tokenContactRequest)
	w.raw(q.From[:])
	w.raw(q.ContactKey[:])
	w.raw(q.To[:])
	w.bytes([]byte(q.Name))
	return w.b
}

// MarshalBinary encodes the request payload.
func (q *ContactRequest) MarshalBinary() ([]byte, error) {
	b := q.signedPart()[1:]
	return append(b, q.Signature[:]...), nil
}

// Token returns the text form of the request.
func (q *ContactRequest) Token() string {
	p, _ := q.MarshalBinary()
	return encodeToken(tokenContactRequest, p)
}

// Verify checks the requester's signature.
func (q *ContactRequest) Verify() error {
	if err := q.From.Verify(domainContactRequest, q.signedPart(), q.Signature[:]); err != nil {
		return fmt.Errorf("contact request from %s: %w: %v", q.From.Fingerprint(), ErrTokenMalformed, err)
	}
	return nil
}

// ParseContactRequest decodes and verifies a contact request.
func ParseContactRequest(token string) (*ContactRequest, error) {
	p, err := decodeToken(token, tokenContactRequest)
	if err != nil {
		return nil, err
	}
	return decodeContactRequest(p)
}

func decodeContactRequest(p []byte) (*ContactRequest, error) {
	r := wireReader{b: p, what: "contact request"}
	q := &ContactRequest{}
	r.fixed("from", q.From[:])
	r.fixed("contact key", q.ContactKey[:])
	r.fixed("to", q.To[:])
	q.Name = string(r.bytes("name", MaxNameLen))
	r.fixed("signature", q.Signature[:])
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("parse contact request: %w: %v", ErrTokenMalformed, r.err)
	}
	if err := checkName(q.Name); err != nil {
		return nil, fmt.Errorf("parse contact request: %w: %v", ErrTokenMalformed, err)
	}
	if q.From.Equal(q.To) {
		return nil, fmt.Errorf("parse contact request: %w: request to oneself", ErrTokenMalformed)
	}
	if err := q.Verify(); err != nil {
		return nil, fmt.Errorf("parse contact request: %w", err)
	}
	return q, nil
}
