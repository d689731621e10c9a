package group

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// The delivery summary lets Open skip reading every delivered copy.
//
// What restore otherwise rebuilds from a full read (every readable copy
// opened, and every entry of the message log without one opened again):
// which entries are decided, which wait for keys, how far this device's
// sending chains went, and what it saw of each writer (the cutoffs of a
// removal). Close writes it, sealed under the local key, when nothing
// changed since the keys were last saved (the receiving chains on disk
// then reflect every message it counts as decided); Open reads it and
// deletes it (synced) before anything can change, so after a crash there
// is none and Open reads everything, as before. It also names the message
// log's length and heads: one that does not match the log (an index write
// that did not reach the disk) is ignored.
const summaryVersion = 1

func (g *Group) summaryKey() []byte {
	return []byte("group/" + hex.EncodeToString(g.id[:]) + "/local/summary")
}

var adSummary = "skein/group/summary/v1"

type summary struct {
	count   uint64
	heads   []cid.Cid
	pending []cid.Cid
	send    map[EpochID]uint64 // next index of this device's chain
	stats   map[crypto.PublicKey]*writerStats
}

// writeSummary writes the delivery summary if the keys saved last match
// the state (see summaryVersion). The logs are closed (flushed); g.mu is
// held.
func (g *Group) writeSummary(ctx context.Context) error {
	if g.replica || g.kv == nil || g.left || !g.keysSaved || g.savedChanges != g.changes || len(g.unstored) > 0 {
		return nil
	}
	w := wireWriter{}
	w.byte1(summaryVersion)
	w.uvarint(uint64(g.msgs.Len()))
	heads := g.msgs.Heads()
	w.uvarint(uint64(len(heads)))
	for _, h := range heads {
		w.bytes(h.Bytes())
	}
	w.uvarint(uint64(len(g.pendingMsgs)))
	for _, e := range g.pendingMsgs {
		w.bytes(e.CID().Bytes())
	}
	w.uvarint(uint64(len(g.sendChains)))
	for e, c := range g.sendChains {
		next, _ := c.Share()
		w.raw(e[:])
		w.uvarint(next)
	}
	w.uvarint(uint64(len(g.stats)))
	for k, s := range g.stats {
		w.raw(k[:])
		w.uvarint(s.maxTime)
		w.uvarint(uint64(len(s.limits)))
		for e, l := range s.limits {
			w.raw(e[:])
			w.uvarint(l)
		}
	}
	ad := append([]byte(adSummary), g.id[:]...)
	sealed, err := g.suite.Seal(&g.localKey, w.b, ad)
	if err != nil {
		return err
	}
	if err := g.kv.Batch(ctx, []log.KVOp{{Key: g.summaryKey(), Value: sealed}}, true); err != nil {
		return fmt.Errorf("write delivery summary: %w", err)
	}
	return nil
}

// takeSummary reads the delivery summary and deletes it (synced); nil if
// there is none, or it does not match the message log.
func (g *Group) takeSummary(ctx context.Context) (*summary, error) {
	if g.kv == nil {
		return nil, nil
	}
	sealed, err := g.kv.Get(ctx, g.summaryKey())
	switch {
	case errors.Is(err, log.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read delivery summary: %w", err)
	}
	if err := g.kv.Batch(ctx, []log.KVOp{{Key: g.summaryKey(), Delete: true}}, true); err != nil {
		return nil, fmt.Errorf("delete delivery summary: %w", err)
	}
	s, err := g.decodeSummary(sealed)
	if err != nil {
		g.logger.Warn("delivery summary unreadable; reading every delivered message", "err", err)
		return nil, nil
	}
	if count := g.msgs.Len(); count != int(s.count) || !slices.EqualFunc(g.msgs.Heads(), s.heads, cid.Cid.Equals) {
		g.logger.Info("delivery summary out of date; reading every delivered message", "summary", s.count, "log", count)
		return nil, nil
	}
	return s, nil
}

func (g *Group) decodeSummary(sealed []byte) (*summary, error) {
	ad := append([]byte(adSummary), g.id[:]...)
	pt, err := g.suite.Open(&g.localKey, sealed, ad)
	if err != nil {
		return nil, err
	}
	r := wireReader{b: pt, what: "delivery summary"}
	if v := r.byte1("version"); r.err == nil && v != summaryVersion {
		r.fail("version", "unsupported version %d", v)
	}
	s := &summary{send: map[EpochID]uint64{}, stats: map[crypto.PublicKey]*writerStats{}}
	s.count = r.uvarint("count")
	readCIDs := func(field string) []cid.Cid {
		var out []cid.Cid
		for i, n := 0, r.count(field, 1<<20); i < n && r.err == nil; i++ {
			c, err := cid.Cast(r.bytes(field, 128))
			if err != nil && r.err == nil {
				r.fail(field, "%v", err)
			}
			out = append(out, c)
		}
		return out
	}
	s.heads = readCIDs("heads")
	s.pending = readCIDs("pending")
	for i, n := 0, r.count("send chains", 1<<16); i < n && r.err == nil; i++ {
		var e EpochID
		r.fixed("epoch", e[:])
		s.send[e] = r.uvarint("next")
	}
	for i, n := 0, r.count("writers", 1<<20); i < n && r.err == nil; i++ {
		var k crypto.PublicKey
		r.fixed("writer", k[:])
		ws := &writerStats{maxTime: r.uvarint("time"), limits: map[EpochID]uint64{}}
		for j, m := 0, r.count("limits", 1<<16); j < m && r.err == nil; j++ {
			var e EpochID
			r.fixed("epoch", e[:])
			ws.limits[e] = r.uvarint("limit")
		}
		s.stats[k] = ws
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// applySummary is restore from a summary: sending chains advanced, writer
// stats, and the entries that wait for keys retried. g.mu is held.
func (g *Group) applySummary(ctx context.Context, s *summary) error {
	for e, next := range s.send {
		if c := g.sendChains[e]; c != nil {
			for n, _ := c.Share(); n < next; n, _ = c.Share() {
				_, mk := c.Next()
				clear(mk[:])
			}
		}
	}
	g.stats = s.stats
	var todo []*log.Entry
	for _, c := range s.pending {
		e, err := g.msgs.Get(ctx, c)
		if err != nil {
			return fmt.Errorf("read message log: %w", err)
		}
		todo = append(todo, e)
	}
	_ = g.processMessages(todo, "")
	return nil
}
