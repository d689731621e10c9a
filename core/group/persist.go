package group

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// Persistence. A group's keys (group seed if held, epoch secrets, ratchet
// chains, and a local storage key) are one sealed keystore secret named
// KeystoreName(group); SaveKeys writes it. Delivered plaintexts are kept in
// the group's KV, sealed under the local storage key, as they are
// delivered. Open restores both.

const (
	keysBlobVersion = 3 // 2 added the replication key, 3 the crypto suite
	adLocalMessage  = "skein/v1/group/local-message\x00"
)

// KeystoreName returns the keystore name under which SaveKeys keeps a
// group's keys.
func KeystoreName(group crypto.PublicKey) string {
	return "skein/group/" + hex.EncodeToString(group[:])
}

func (g *Group) localPrefix() []byte {
	return []byte("group/" + hex.EncodeToString(g.id[:]) + "/local/m/")
}

// SaveKeys writes the group's keys and ratchet states to ks, sealed at
// rest. Call it after Create, Join, AcceptContact or RequestContact and
// regularly (e.g. after each batch of Receive and Send, and before Close):
// keys not saved are lost on a crash. Each save replaces the previous one,
// so message keys already used are not kept on disk.
//
// Keys are never saved ahead of the readable copies of the messages they
// opened: while a copy could not be written (a failing store), SaveKeys
// retries it and, if it fails again, saves nothing and returns the error.
//
// The group is held while the keys are gathered, not while the keystore
// writes them (a file write and two fsyncs): sends and deliveries go on
// meanwhile, and the saved state is the one gathered.
func (g *Group) SaveKeys(ks *crypto.Keystore) error {
	g.saveMu.Lock() // saves in the order their state was gathered
	defer g.saveMu.Unlock()
	blob, changes, err := g.keysBlob()
	if err != nil {
		return err
	}
	defer clear(blob)
	if err := ks.Put(KeystoreName(g.id), blob); err != nil {
		return fmt.Errorf("save group %s: %w", g.id.Fingerprint(), err)
	}
	g.mu.Lock()
	g.keysSaved, g.savedChanges = true, changes
	g.mu.Unlock()
	return nil
}

// keysBlob encodes what SaveKeys saves, under the group's lock.
func (g *Group) keysBlob() (_ []byte, changes uint64, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	changes = g.changes
	defer func() {
		if err != nil {
			changes = 0
		}
	}()
	if len(g.unstored) > 0 {
		g.storeDelivered(nil)
		if n := len(g.unstored); n > 0 {
			return nil, 0, fmt.Errorf("save group %s: %w: %d delivered messages are not stored yet, so the keys that opened them are not saved either (after a restart they are opened again)",
				g.id.Fingerprint(), ErrUnsavedMessages, n)
		}
	}
	w := wireWriter{}
	w.byte1(keysBlobVersion)
	w.byte1(byte(g.kind))
	w.raw(g.id[:])
	if g.groupKey != nil {
		w.byte1(1)
		s := g.groupKey.Seed()
		w.raw(s)
		clear(s)
	} else {
		w.byte1(0)
	}
	w.raw(g.localKey[:])
	if g.replKey == nil {
		clear(w.b)
		return nil, 0, fmt.Errorf("save group %s: %w: no replication key", g.id.Fingerprint(), ErrNotMember)
	}
	w.raw(g.replKey[:])
	w.bytes([]byte(g.suite.Name()))
	left := byte(0)
	if g.left {
		left = 1
	}
	w.byte1(left)
	w.uvarint(uint64(len(g.secrets)))
	for e, s := range g.secrets {
		w.raw(e[:])
		w.raw(s[:])
	}
	w.uvarint(uint64(len(g.sendChains)))
	for e, c := range g.sendChains {
		b, _ := c.MarshalBinary()
		w.raw(e[:])
		w.bytes(b)
	}
	w.uvarint(uint64(len(g.recvChains)))
	for ref, c := range g.recvChains {
		b, err := c.MarshalBinary()
		if err != nil {
			clear(w.b)
			return nil, 0, fmt.Errorf("save group %s: %w", g.id.Fingerprint(), err)
		}
		w.raw(ref.sender[:])
		w.raw(ref.epoch[:])
		w.bytes(b)
	}
	return w.b, changes, nil
}

// Open reopens a group this device saved with SaveKeys: it reads the keys
// from ks, reopens the logs in st (reading their heads and index, not every
// entry) and the delivered messages kept there.
func Open(ctx context.Context, id *Identity, ks *crypto.Keystore, group crypto.PublicKey, st Storage, opts ...Option) (*Group, error) {
	blob, err := ks.Get(KeystoreName(group))
	if err != nil {
		return nil, fmt.Errorf("open group %s: %w", group.Fingerprint(), err)
	}
	defer clear(blob)
	r := wireReader{b: blob, what: "group keys"}
	version := r.byte1("version")
	if r.err == nil && (version < 1 || version > keysBlobVersion) {
		r.fail("version", "unsupported version %d", version)
	}
	kind := Kind(r.byte1("kind"))
	var gid crypto.PublicKey
	r.fixed("group", gid[:])
	var gk *crypto.SigningKey
	if r.byte1("has seed") == 1 && r.err == nil {
		seed := make([]byte, crypto.SeedSize)
		r.fixed("seed", seed)
		if r.err == nil {
			gk, err = crypto.NewSigningKeyFromSeed(seed)
			clear(seed)
			if err != nil || !gk.Public().Equal(gid) {
				r.fail("seed", "does not match the group key")
			}
		}
	}
	var localKey [32]byte
	r.fixed("local key", localKey[:])
	var replKey *[32]byte
	if version >= 2 {
		replKey = new([32]byte)
		r.fixed("replication key", replKey[:])
	}
	suite := crypto.DefaultSuite().Name() // versions 1 and 2 knew no other
	if version >= 3 {
		suite = string(r.bytes("suite", maxSuiteName))
	}
	left := r.byte1("left") == 1
	secrets := map[EpochID]*[32]byte{}
	for i, n := 0, r.count("secrets", 1<<16); i < n && r.err == nil; i++ {
		var e EpochID
		var s [32]byte
		r.fixed("epoch", e[:])
		r.fixed("secret", s[:])
		secrets[e] = &s
	}
	send := map[EpochID]*crypto.SendingChain{}
	for i, n := 0, r.count("send chains", 1<<16); i < n && r.err == nil; i++ {
		var e EpochID
		r.fixed("epoch", e[:])
		c := &crypto.SendingChain{}
		if err := c.UnmarshalBinary(r.bytes("chain", 1024)); err != nil && r.err == nil {
			r.fail("chain", "%v", err)
		}
		send[e] = c
	}
	recv := map[chainRef]*crypto.ReceivingChain{}
	for i, n := 0, r.count("receive chains", 1<<20); i < n && r.err == nil; i++ {
		var ref chainRef
		r.fixed("sender", ref.sender[:])
		r.fixed("epoch", ref.epoch[:])
		c := &crypto.ReceivingChain{}
		if err := c.UnmarshalBinary(r.bytes("chain", 1<<22)); err != nil && r.err == nil {
			r.fail("chain", "%v", err)
		}
		recv[ref] = c
	}
	r.end()
	if r.err == nil && replKey == nil {
		// Version 1 predates the replication key: derive it from the
		// genesis secret, which a version-1 founder or joiner held.
		if s := secrets[GenesisEpoch]; s != nil {
			k, err := replicationKey(gid, s)
			if err != nil {
				r.fail("replication key", "%v", err)
			}
			replKey = &k
		} else {
			r.fail("version", "version 1 keys without the genesis secret: rejoin the group with a new invitation")
		}
	}
	if r.err == nil && !gid.Equal(group) {
		r.fail("group", "keys of group %s stored under %s", gid.Fingerprint(), group.Fingerprint())
	}
	if r.err != nil {
		return nil, fmt.Errorf("open group %s: %w: %v", group.Fingerprint(), ErrMalformedPayload, r.err)
	}
	g, err := openGroup(ctx, id, kind, gid, gk, st, append(slices.Clone(opts), groupSuite(suite)))
	if err != nil {
		return nil, fmt.Errorf("open group %s: %w", group.Fingerprint(), err)
	}
	g.mu.Lock()
	g.localKey, g.secrets, g.sendChains, g.recvChains, g.left = localKey, secrets, send, recv, left
	if err = g.setReplicationKey(*replKey); err == nil {
		err = g.restore(ctx)
	}
	g.mu.Unlock()
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("open group %s: %w", group.Fingerprint(), err)
	}
	return g, nil
}

// restore rebuilds the state, loads delivered messages, advances own
// sending chains past every index already used, and retries the entries
// that were waiting for keys.
//
// With a delivery summary (written by the last Close, see summary.go) it
// reads none of the delivered copies: the summary says what they told.
// Without one (a crash, or a data directory from before summaries) it
// reads them all; either way the delivered messages stay in the KV, not
// in memory (deliveredMsg reads them when listed).
func (g *Group) restore(ctx context.Context) error {
	if _, err := g.rebuild(ctx); err != nil {
		return err
	}
	s, err := g.takeSummary(ctx)
	if err != nil {
		return err
	}
	if s != nil {
		return g.applySummary(ctx, s)
	}
	for kv, err := range g.kv.Query(ctx, log.KVQuery{Prefix: g.localPrefix()}) {
		if err != nil {
			return fmt.Errorf("read delivered messages: %w", err)
		}
		m, err := g.openLocal(kv.Key[len(g.localPrefix()):], kv.Value)
		if err != nil {
			return err
		}
		k := m.CID.KeyString()
		g.final[k] = true
		g.seen[msgRef{sender: m.Sender, epoch: m.Epoch, index: m.Index}] = k
		ws := g.stats[m.Sender]
		if ws == nil {
			ws = &writerStats{limits: map[EpochID]uint64{}}
			g.stats[m.Sender] = ws
		}
		ws.maxTime = max(ws.maxTime, m.Time)
		ws.limits[m.Epoch] = max(ws.limits[m.Epoch], m.Index+1)
		if m.Sender.Equal(g.me.DeviceKey()) {
			if c := g.sendChains[m.Epoch]; c != nil {
				for next, _ := c.Share(); next <= m.Index; next, _ = c.Share() {
					_, mk := c.Next()
					clear(mk[:])
				}
			}
		}
	}
	// Only the entries not delivered are read: reopening a large group
	// reads no block of a message it already holds.
	var todo []*log.Entry
	for c, err := range g.msgs.CIDs(ctx) {
		if err != nil {
			return fmt.Errorf("read message log: %w", err)
		}
		if g.final[c.KeyString()] {
			continue
		}
		e, err := g.msgs.Get(ctx, c)
		if err != nil {
			return fmt.Errorf("read message log: %w", err)
		}
		todo = append(todo, e)
	}
	// Refusals were reported when the entries arrived; not again here.
	_ = g.processMessages(todo, "")
	return nil
}

func encodeLocal(m *Message) []byte {
	w := wireWriter{}
	w.raw(m.Sender[:])
	w.raw(m.Account[:])
	w.raw(m.Epoch[:])
	w.uvarint(m.Index)
	w.uint64be(uint64(m.SentAt.UnixMilli()))
	w.uvarint(m.Time)
	w.bytes(m.Body)
	return w.b
}

// storeLocal keeps delivered messages in the KV, sealed, in one synced
// batch.
func (g *Group) storeLocal(ctx context.Context, ms ...*Message) error {
	if g.kv == nil || len(ms) == 0 {
		return nil
	}
	ops := make([]log.KVOp, len(ms))
	for i, m := range ms {
		op, err := g.localOp(m)
		if err != nil {
			return err
		}
		ops[i] = op
	}
	// Synced: once the keys that opened these messages are saved (SaveKeys
	// waits for this batch), this copy is the only one this device can
	// read. (Send writes its copy with the entry's index: see Send.)
	return g.kv.Batch(ctx, ops, true)
}

// localOp is the KV write of m's local copy, sealed under the local key.
func (g *Group) localOp(m *Message) (log.KVOp, error) {
	ad := append([]byte(adLocalMessage), g.id[:]...)
	ad = append(ad, m.CID.Bytes()...)
	sealed, err := g.suite.Seal(&g.localKey, encodeLocal(m), ad)
	if err != nil {
		return log.KVOp{}, err
	}
	return log.KVOp{Key: append(g.localPrefix(), m.CID.Bytes()...), Value: sealed}, nil
}

func (g *Group) openLocal(cidBytes, sealed []byte) (*Message, error) {
	c, err := cid.Cast(cidBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: stored message key", ErrMalformedPayload)
	}
	ad := append([]byte(adLocalMessage), g.id[:]...)
	ad = append(ad, c.Bytes()...)
	pt, err := g.suite.Open(&g.localKey, sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("stored message %s: %w", c, err)
	}
	r := wireReader{b: pt, what: "stored message"}
	m := &Message{CID: c}
	r.fixed("sender", m.Sender[:])
	r.fixed("account", m.Account[:])
	r.fixed("epoch", m.Epoch[:])
	m.Index = r.uvarint("index")
	m.SentAt = time.UnixMilli(int64(r.uint64be("sent at")))
	m.Time = r.uvarint("time")
	m.Body = r.bytes("body", maxSealed)
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, r.err)
	}
	return m, nil
}
