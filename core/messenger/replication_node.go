package messenger

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

// A replication node is a messenger that also stores and serves the logs of
// groups other nodes' members registered with it. It holds each such group
// by its public key and replication key only (group.Replicate): it
// verifies every entry with the members' rules, stores and serves what
// passes, and can open nothing.
//
// Registration is a direct request on RegisterProtocol from a member's
// node: version (1 byte, 1), the node's registration secret (32 bytes), the
// group's public key (32), the group's replication key (32). The node
// answers one status byte: 1 once it replicates the group, 2 for a wrong
// secret, 3 when it is full, 4 for a malformed request, 5 for a wrong
// secret after which it cuts the peer off (too many wrong secrets); a
// failure of its own (storage) is an error.

// RegisterProtocol is the direct-request protocol of registrations.
const RegisterProtocol = "/skein/replication/register/1"

const (
	registrationVersion = 1
	registrationLen     = 1 + 32 + 32 + 32
	// Status bytes of a registration answer.
	registeredOK        = 1
	registeredForbidden = 2
	registeredFull      = 3
	registeredMalformed = 4
	registeredCutOff    = 5
	// DefaultMaxReplicas bounds the groups a replication node accepts
	// unless ReplicationNodeConfig says otherwise.
	DefaultMaxReplicas = 10000
	replicaPrefix      = "messenger/replica/"
)

// Errors of registration.
var (
	// ErrNotAuthorized: a registration did not present the replication
	// node's secret.
	ErrNotAuthorized = errors.New("registration not authorized")
	// ErrTooManyGroups: the replication node holds as many groups as it
	// accepts.
	ErrTooManyGroups = errors.New("replication node is full")
	// ErrNotReplicationNode: the node does not serve registrations.
	ErrNotReplicationNode = errors.New("not a replication node")
	// ErrNoDirectRequests: the network cannot send or answer direct
	// requests, which registration needs.
	ErrNoDirectRequests = errors.New("the network has no direct requests")
)

// ReplicationNodeConfig makes a messenger a replication node.
type ReplicationNodeConfig struct {
	// Secret authorizes registrations: members present it (inside the
	// token ReplicationNodeToken returns). Required, not all zero.
	Secret [32]byte
	// MaxGroups bounds the groups accepted (0: DefaultMaxReplicas).
	MaxGroups int
}

// ReplicaInfo describes a group this node replicates for others.
type ReplicaInfo struct {
	ID crypto.PublicKey
	// Kind is learned from the signed group-created entry (0 until it
	// arrived).
	Kind group.Kind
	// RegisteredBy is the peer that registered it first; Registered when.
	RegisteredBy string
	Registered   time.Time
	// Registrations are every peer that registered it (the first one
	// first), each with its latest registration.
	Registrations []Registration
	Sync          SyncStatus
}

type replicaRecord struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
	// Peers are all the peers that registered the group (By first), each
	// with its latest registration; at most maxRegistrants.
	Peers []Registration `json:"peers,omitempty"`
}

// Registration is one peer's registration of a group with a replication
// node: the latest time it registered it.
type Registration struct {
	Peer string    `json:"peer"`
	At   time.Time `json:"at"`
}

// maxRegistrants bounds the peers a replica record remembers: the first
// one, and the most recent others.
const maxRegistrants = 64

// registrations lists every peer that registered the group (By first).
func (r replicaRecord) registrations() []Registration {
	if len(r.Peers) > 0 {
		return slices.Clone(r.Peers)
	}
	return []Registration{{Peer: r.By, At: r.At}} // a record of before Peers
}

// registered returns r with peer's registration at time at added.
func (r replicaRecord) registered(peer string, at time.Time) replicaRecord {
	peers := r.registrations()
	if i := slices.IndexFunc(peers, func(p Registration) bool { return p.Peer == peer }); i >= 0 {
		peers[i].At = at
	} else {
		peers = append(peers, Registration{Peer: peer, At: at})
	}
	if len(peers) > maxRegistrants { // keep the first; drop the stalest of the rest
		rest := peers[1:]
		slices.SortStableFunc(rest, func(a, b Registration) int { return b.At.Compare(a.At) })
		peers = append(peers[:1], rest[:maxRegistrants-1]...)
	}
	r.Peers = peers
	return r
}

type replicaHeld struct {
	g    *group.Group
	rec  replicaRecord
	logs []replication.LogID
}

func replicaKeyName(id crypto.PublicKey) string {
	return "skein/replica/" + hex.EncodeToString(id[:])
}

// startReplicationNode reopens the registered groups and answers
// registrations.
func (m *Messenger) startReplicationNode(ctx context.Context) error {
	rn := m.cfg.ReplicationNode
	if rn.Secret == ([32]byte{}) {
		return fmt.Errorf("replication node: %w: the registration secret is all zero", ErrInvalidArgument)
	}
	dm, ok := m.cfg.Network.(sdk.DirectMessenger)
	if !ok {
		return fmt.Errorf("replication node: %w", ErrNoDirectRequests)
	}
	for kv, err := range m.cfg.Store.Query(ctx, sdk.Query{Prefix: []byte(replicaPrefix)}) {
		if err != nil {
			return fmt.Errorf("replication node: list groups: %w", err)
		}
		raw, err := hex.DecodeString(strings.TrimPrefix(string(kv.Key), replicaPrefix))
		if err != nil {
			return fmt.Errorf("replica record %q: %w", kv.Key, err)
		}
		gid, err := crypto.ParsePublicKey(raw)
		if err != nil {
			return fmt.Errorf("replica record %q: %w", kv.Key, err)
		}
		var rec replicaRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("replica record %s: %w", gid.String(), err)
		}
		key, err := m.cfg.Keystore.Get(replicaKeyName(gid))
		if err != nil {
			return fmt.Errorf("replica %s: replication key: %w", gid.String(), err)
		}
		if len(key) != 32 {
			return fmt.Errorf("replica %s: replication key of %d bytes", gid.String(), len(key))
		}
		if err := m.holdReplica(ctx, gid, [32]byte(key), rec); err != nil {
			return err
		}
	}
	if err := dm.HandleRequests(RegisterProtocol, m.handleRegistration); err != nil {
		return fmt.Errorf("replication node: register %s: %w", RegisterProtocol, err)
	}
	m.logger.Info("serving as replication node", "groups", len(m.Replicas()), "max_groups", m.maxReplicas())
	return nil
}

func (m *Messenger) maxReplicas() int {
	if n := m.cfg.ReplicationNode.MaxGroups; n > 0 {
		return n
	}
	return DefaultMaxReplicas
}

// holdReplica opens group gid as a replica and replicates it.
func (m *Messenger) holdReplica(ctx context.Context, gid crypto.PublicKey, key [32]byte, rec replicaRecord) error {
	g, err := group.Replicate(ctx, gid, key, m.st, m.opts()...)
	if err != nil {
		return err
	}
	ids, err := m.replicate(g, key, nil)
	if err != nil {
		g.Close()
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		m.unreplicate(ids)
		g.Close()
		return ErrClosed
	}
	m.replicas[gid] = &replicaHeld{g: g, rec: rec, logs: ids}
	return nil
}

// encodeRegistration is the request body of a registration.
func encodeRegistration(secret [32]byte, gid crypto.PublicKey, key [32]byte) []byte {
	b := make([]byte, 0, registrationLen)
	b = append(b, registrationVersion)
	b = append(b, secret[:]...)
	b = append(b, gid[:]...)
	return append(b, key[:]...)
}

// decodeRegistration decodes a registration request strictly.
func decodeRegistration(b []byte) (secret [32]byte, gid crypto.PublicKey, key [32]byte, err error) {
	if len(b) != registrationLen {
		return secret, gid, key, fmt.Errorf("%w: registration of %d bytes, want %d", ErrInvalidArgument, len(b), registrationLen)
	}
	if b[0] != registrationVersion {
		return secret, gid, key, fmt.Errorf("%w: registration version %d", ErrInvalidArgument, b[0])
	}
	copy(secret[:], b[1:33])
	copy(gid[:], b[33:65])
	copy(key[:], b[65:97])
	if _, perr := crypto.ParsePublicKey(gid[:]); perr != nil {
		return secret, gid, key, fmt.Errorf("%w: registration names an invalid group key: %v", ErrInvalidArgument, perr)
	}
	return secret, gid, key, nil
}

// handleRegistration answers a registration request.
func (m *Messenger) handleRegistration(ctx context.Context, from string, req []byte) ([]byte, error) {
	secret, gid, key, err := decodeRegistration(req)
	if err != nil {
		m.logger.Warn("registration refused: malformed", "peer", from, "err", err)
		return []byte{registeredMalformed}, nil
	}
	want := m.cfg.ReplicationNode.Secret
	if subtle.ConstantTimeCompare(secret[:], want[:]) != 1 {
		if m.wrongSecret(ctx, from, gid) {
			return []byte{registeredCutOff}, nil
		}
		return []byte{registeredForbidden}, nil
	}
	// One registration at a time: two of the same group must not both
	// start replicating it.
	m.regMu.Lock()
	defer m.regMu.Unlock()
	m.mu.Lock()
	held, have := m.replicas[gid]
	n := len(m.replicas)
	m.mu.Unlock()
	if have {
		// Another member (or the same one again): remember who.
		if err := m.recordRegistration(ctx, gid, held, from); err != nil {
			return nil, err
		}
		return []byte{registeredOK}, nil
	}
	if n >= m.maxReplicas() {
		m.logger.Warn("registration refused: full", "peer", from, "group", gid.String(), "max_groups", m.maxReplicas())
		return []byte{registeredFull}, nil
	}
	now := time.Now().UTC()
	rec := replicaRecord{By: from, At: now, Peers: []Registration{{Peer: from, At: now}}}
	if err := m.cfg.Keystore.Put(replicaKeyName(gid), key[:]); err != nil {
		return nil, fmt.Errorf("register group %s: %w", gid.String(), err)
	}
	b, _ := json.Marshal(rec)
	if err := m.cfg.Store.Batch(ctx, []sdk.Op{{Key: []byte(replicaPrefix + hex.EncodeToString(gid[:])), Value: b}}, true); err != nil {
		return nil, fmt.Errorf("register group %s: %w", gid.String(), err)
	}
	if err := m.holdReplica(context.WithoutCancel(ctx), gid, key, rec); err != nil {
		return nil, fmt.Errorf("register group %s: %w", gid.String(), err)
	}
	m.logger.Info("group registered", "group", gid.String(), "peer", from)
	return []byte{registeredOK}, nil
}

// recordRegistration adds peer's registration to the record of the group
// gid, held, and stores it.
func (m *Messenger) recordRegistration(ctx context.Context, gid crypto.PublicKey, held *replicaHeld, peer string) error {
	m.mu.Lock()
	rec := held.rec.registered(peer, time.Now().UTC())
	held.rec = rec
	m.mu.Unlock()
	b, _ := json.Marshal(rec)
	if err := m.cfg.Store.Batch(ctx, []sdk.Op{{Key: []byte(replicaPrefix + hex.EncodeToString(gid[:])), Value: b}}, true); err != nil {
		return fmt.Errorf("register group %s: %w", gid.String(), err)
	}
	m.logger.Info("group registered again", "group", gid.String(), "peer", peer, "peers", len(rec.Peers))
	return nil
}

// Guessing the registration secret: a peer that presents a wrong one
// maxWrongSecrets times within wrongSecretWindow is cut off (when the
// network can) for wrongSecretBlock; refusals past the first few are not
// logged one by one.
const (
	maxWrongSecrets   = 5
	wrongSecretWindow = time.Minute
	wrongSecretBlock  = 10 * time.Minute
)

type wrongSecrets struct {
	since time.Time
	n     int
}

// cutOffGrace is how long after its answer a peer cut off for wrong
// secrets stays connected: long enough for the answer saying so to reach
// it, rather than a reset stream.
const cutOffGrace = 500 * time.Millisecond

// wrongSecret counts a registration with a wrong secret from peer and
// reports whether the peer is now cut off (it is, cutOffGrace later).
func (m *Messenger) wrongSecret(ctx context.Context, peer string, gid crypto.PublicKey) bool {
	m.mu.Lock()
	w := m.wrong[peer]
	now := time.Now()
	if now.Sub(w.since) > wrongSecretWindow {
		w = wrongSecrets{since: now}
	}
	w.n++
	m.wrong[peer] = w
	if len(m.wrong) > 4096 { // bounded: forget the oldest windows
		for p, x := range m.wrong {
			if now.Sub(x.since) > wrongSecretWindow {
				delete(m.wrong, p)
			}
		}
	}
	m.mu.Unlock()
	switch {
	case w.n < maxWrongSecrets:
		m.logger.Warn("registration refused: wrong secret", "peer", peer, "group", gid.String())
	case w.n == maxWrongSecrets:
		m.logger.Warn("registration refused: wrong secret again; cutting the peer off", "peer", peer, "attempts", w.n, "for", wrongSecretBlock)
		b, ok := m.cfg.Network.(sdk.PeerBlocker)
		if !ok {
			return false
		}
		bctx := context.WithoutCancel(ctx)
		time.AfterFunc(cutOffGrace, func() {
			if err := b.BlockPeer(bctx, peer, "guessing the registration secret", wrongSecretBlock); err != nil {
				m.logger.Warn("network could not block peer", "peer", peer, "err", err)
			}
		})
		return true
	}
	return false
}

// Replicas lists the groups this node replicates for others, by id.
func (m *Messenger) Replicas() []ReplicaInfo {
	m.mu.Lock()
	hs := make([]replicaHeld, 0, len(m.replicas))
	for _, h := range m.replicas {
		hs = append(hs, *h) // rec changes under m.mu (recordRegistration)
	}
	m.mu.Unlock()
	st := m.repl.Status()
	connected := m.connectedPeers(context.Background())
	out := make([]ReplicaInfo, 0, len(hs))
	for _, h := range hs {
		out = append(out, ReplicaInfo{ID: h.g.ID(), Kind: h.g.Kind(), RegisteredBy: h.rec.By, Registered: h.rec.At,
			Registrations: h.rec.registrations(), Sync: m.withReach(syncStatus(h.g.ID(), h.logs, st), h.logs, connected)})
	}
	slices.SortFunc(out, func(a, b ReplicaInfo) int { return slices.Compare(a.ID[:], b.ID[:]) })
	return out
}

// RemoveReplica stops replicating the registered group whose hex id ref is
// (or uniquely starts) and forgets its registration and replication key.
// Its entries stay in the blockstore. It returns the group's id.
func (m *Messenger) RemoveReplica(ctx context.Context, ref string) (crypto.PublicKey, error) {
	if m.cfg.ReplicationNode == nil {
		return crypto.PublicKey{}, ErrNotReplicationNode
	}
	lref := strings.ToLower(strings.TrimSpace(ref))
	m.mu.Lock()
	var found []crypto.PublicKey
	for id := range m.replicas {
		if lref != "" && strings.HasPrefix(hex.EncodeToString(id[:]), lref) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		m.mu.Unlock()
		if len(found) == 0 {
			return crypto.PublicKey{}, fmt.Errorf("%w: no registered group %q", ErrGroupNotFound, ref)
		}
		return crypto.PublicKey{}, fmt.Errorf("%w: %q is a prefix of %d registered groups", ErrAmbiguous, ref, len(found))
	}
	gid := found[0]
	h := m.replicas[gid]
	delete(m.replicas, gid)
	m.mu.Unlock()
	m.unreplicate(h.logs)
	errs := []error{h.g.Close()}
	if err := m.cfg.Store.Delete(ctx, []byte(replicaPrefix+hex.EncodeToString(gid[:]))); err != nil {
		errs = append(errs, fmt.Errorf("forget registration: %w", err))
	}
	if err := m.cfg.Keystore.Delete(replicaKeyName(gid)); err != nil {
		errs = append(errs, fmt.Errorf("forget replication key: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return gid, fmt.Errorf("remove replica %s: %w", gid.String(), err)
	}
	m.logger.Info("group unregistered", "group", gid.String())
	return gid, nil
}

// IsReplicationNode reports whether this messenger serves registrations.
func (m *Messenger) IsReplicationNode() bool { return m.cfg.ReplicationNode != nil }

// ReplicationNodeToken returns the token members use to register groups
// with this node (an error unless it is a replication node): its network
// peer id and addresses, and the registration secret.
func (m *Messenger) ReplicationNodeToken() (string, error) {
	if m.cfg.ReplicationNode == nil {
		return "", ErrNotReplicationNode
	}
	t := &group.ReplicationNodeToken{Peer: m.cfg.Network.PeerID(), Addrs: m.cfg.Network.Addrs(), Secret: m.cfg.ReplicationNode.Secret}
	if len(t.Addrs) > group.MaxNodeAddrs {
		t.Addrs = t.Addrs[:group.MaxNodeAddrs]
	}
	s := t.Token()
	if s == "" {
		return "", fmt.Errorf("replication-node token: the network's peer id or addresses do not fit a token")
	}
	return s, nil
}

// RegisterWithReplicationNode registers the group ref names with the
// replication node of token (from its operator's ReplicationNodeToken):
// it connects to the node, hands it the group's public key and replication
// key (never a key that opens anything), and swaps heads with it so it
// holds the group's logs at once. Registering twice is harmless.
func (m *Messenger) RegisterWithReplicationNode(ctx context.Context, ref, token string) error {
	t, err := group.ParseReplicationNodeToken(strings.TrimSpace(token))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	h, err := m.resolve(ref)
	if err != nil {
		return err
	}
	if h.rec.Left {
		return fmt.Errorf("register group %s: %w: this device left it", h.g.ID().Fingerprint(), group.ErrNotMember)
	}
	key, err := h.g.ReplicationKey()
	if err != nil {
		return err
	}
	dm, ok := m.cfg.Network.(sdk.DirectMessenger)
	if !ok {
		return fmt.Errorf("register group %s: %w", h.g.ID().Fingerprint(), ErrNoDirectRequests)
	}
	if t.Peer == m.cfg.Network.PeerID() {
		return fmt.Errorf("%w: the token is this node's own", ErrInvalidArgument)
	}
	// A node connected already on another address (a network may refuse
	// the token's addresses if none answers) registers all the same.
	if err := m.cfg.Network.Connect(ctx, sdk.PeerInfo{ID: t.Peer, Addrs: t.Addrs}); err != nil && !m.connectedPeers(ctx)[t.Peer] {
		return fmt.Errorf("register group %s: reach replication node %s: %w", h.g.ID().Fingerprint(), t.Peer, err)
	}
	resp, err := dm.Request(ctx, t.Peer, RegisterProtocol, encodeRegistration(t.Secret, h.g.ID(), key))
	if err != nil {
		return fmt.Errorf("register group %s with %s: %w", h.g.ID().Fingerprint(), t.Peer, err)
	}
	var refused error
	switch {
	case len(resp) != 1:
		refused = fmt.Errorf("unexpected answer of %d bytes", len(resp))
	case resp[0] == registeredOK:
	case resp[0] == registeredForbidden:
		refused = fmt.Errorf("%w: the node refused the token's secret (a new token from its operator?)", ErrNotAuthorized)
	case resp[0] == registeredCutOff:
		refused = fmt.Errorf("%w: the node refused the token's secret %d times in a row and cut this node off for %s: ask its operator for a new token (skein replication token)", ErrNotAuthorized, maxWrongSecrets, wrongSecretBlock)
	case resp[0] == registeredFull:
		refused = ErrTooManyGroups
	case resp[0] == registeredMalformed:
		refused = fmt.Errorf("the node found the request malformed (another protocol version?)")
	default:
		refused = fmt.Errorf("unknown answer %d", resp[0])
	}
	if refused != nil {
		return fmt.Errorf("register group %s with %s: %w", h.g.ID().Fingerprint(), t.Peer, refused)
	}
	if err := m.repl.ExchangeHeads(ctx, t.Peer); err != nil {
		m.logger.Warn("registered, but the first head exchange failed; anti-entropy will retry", "peer", t.Peer, "err", err)
	}
	return nil
}
