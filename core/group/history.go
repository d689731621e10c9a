package group

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
)

// MaxHistoryBody bounds one message body in a history batch.
const MaxHistoryBody = maxSealed

// ImportHistory makes messages another device of this account read (and
// handed over, e.g. by the device-history protocol) delivered here too: a
// device that joins a group reads only what is sent after it joined, and
// its account's other devices hold the rest. Each message must name an
// entry of this replica's message log written by its Sender (so only
// bodies and headers are taken on trust, from a device of this account);
// one whose entry has not arrived yet is counted in missing, for a later
// call. Messages already delivered are skipped. It returns how many it
// delivered.
func (g *Group) ImportHistory(ctx context.Context, msgs []*Message) (imported, missing int, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return 0, 0, fmt.Errorf("import history of group %s: %w", g.id.Fingerprint(), err)
	}
	var out []*Message
	for _, m := range msgs {
		if m == nil || !m.CID.Defined() {
			return 0, 0, fmt.Errorf("import history of group %s: %w: message without entry", g.id.Fingerprint(), ErrMalformedPayload)
		}
		k := m.CID.KeyString()
		if g.delivered[k] != nil {
			continue
		}
		if g.kv != nil {
			// Delivered before the group was opened: its copy is in the KV.
			held, err := g.kv.Has(ctx, append(g.localPrefix(), m.CID.Bytes()...))
			if err != nil {
				return 0, 0, fmt.Errorf("import history of group %s: %w", g.id.Fingerprint(), err)
			}
			if held {
				continue
			}
		}
		ok, err := g.msgs.Has(ctx, m.CID)
		if err != nil {
			return 0, 0, fmt.Errorf("import history of group %s: %w", g.id.Fingerprint(), err)
		}
		if !ok {
			missing++
			continue
		}
		e, err := g.msgs.Get(ctx, m.CID)
		if err != nil {
			return 0, 0, fmt.Errorf("import history of group %s: %w", g.id.Fingerprint(), err)
		}
		if w := pub(e.Writer); !w.Equal(m.Sender) {
			return 0, 0, fmt.Errorf("import history of group %s: %w: message %s names sender %s, its entry was written by %s",
				g.id.Fingerprint(), ErrTampered, m.CID, m.Sender.Fingerprint(), w.Fingerprint())
		}
		acct, _ := g.state.accountOf(m.Sender)
		c := &Message{CID: m.CID, Sender: m.Sender, Account: acct, Epoch: m.Epoch, Index: m.Index,
			SentAt: m.SentAt, Time: e.Time, Body: append([]byte(nil), m.Body...)}
		out = append(out, c)
	}
	if len(out) == 0 {
		return 0, missing, nil
	}
	if err := g.storeLocal(ctx, out...); err != nil {
		return 0, 0, fmt.Errorf("import history of group %s: %w", g.id.Fingerprint(), err)
	}
	g.changes++
	for _, m := range out {
		k := m.CID.KeyString()
		g.delivered[k] = m
		g.final[k] = true
		delete(g.pendingMsgs, k)
	}
	return len(out), missing, nil
}

// EncodeHistory encodes messages for the device-history protocol:
// uvarint(n) || n × (bytes(cid) || sender(32) || epoch(16) || uvarint(index)
// || uint64be(sent at, Unix ms) || bytes(body)).
func EncodeHistory(msgs []*Message) []byte {
	w := wireWriter{}
	w.uvarint(uint64(len(msgs)))
	for _, m := range msgs {
		w.bytes(m.CID.Bytes())
		w.raw(m.Sender[:])
		w.raw(m.Epoch[:])
		w.uvarint(m.Index)
		w.uint64be(uint64(m.SentAt.UnixMilli()))
		w.bytes(m.Body)
	}
	return w.b
}

// MaxHistoryBatch bounds the messages of one history batch.
const MaxHistoryBatch = 4096

// DecodeHistory decodes what EncodeHistory wrote, strictly (errors wrap
// ErrMalformedPayload).
func DecodeHistory(b []byte) ([]*Message, error) {
	r := wireReader{b: b, what: "history"}
	n := r.count("messages", MaxHistoryBatch)
	out := make([]*Message, 0, min(n, 64))
	for i := 0; i < n && r.err == nil; i++ {
		m := &Message{}
		cb := r.bytes("cid", 128)
		if r.err != nil {
			break
		}
		c, err := cid.Cast(cb)
		if err != nil {
			r.fail("cid", "%v", err)
			break
		}
		m.CID = c
		r.fixed("sender", m.Sender[:])
		r.fixed("epoch", m.Epoch[:])
		m.Index = r.uvarint("index")
		m.SentAt = time.UnixMilli(int64(r.uint64be("sent at")))
		m.Body = r.bytes("body", MaxHistoryBody)
		out = append(out, m)
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, r.err)
	}
	return out, nil
}

// historyAD binds a sealed history batch to its group and recipient.
func historyAD(group, device crypto.PublicKey) []byte {
	ad := append([]byte("skein/v1/device-history\x00"), group[:]...)
	return append(ad, device[:]...)
}

// SealHistory seals an encoded history batch to a device (its X25519 key
// from the certificate).
func SealHistory(group crypto.PublicKey, to *crypto.DeviceCertificate, pt []byte) ([]byte, error) {
	return crypto.SealTo(to.DeviceX25519, pt, historyAD(group, to.Device))
}

// OpenHistory opens a batch SealHistory sealed to this device.
func OpenHistory(id *Identity, group crypto.PublicKey, sealed []byte) ([]*Message, error) {
	pt, err := crypto.OpenFrom(id.Device.X25519(), sealed, historyAD(group, id.DeviceKey()))
	if err != nil {
		return nil, fmt.Errorf("%w: history batch: %v", ErrTampered, err)
	}
	return DecodeHistory(pt)
}
