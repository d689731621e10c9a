package messenger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
)

// Bounds of the held-elsewhere reckoning of one log: the newest own
// entries looked at, and the entries read walking down from peers' heads.
const (
	maxUnheldScan = 1024
	maxHeldWalk   = 1 << 15
)

// heldMark is the newest of this device's entries of a log that another
// node is known to hold: it and every earlier own entry are held (each own
// append names the heads it saw, so an own entry is an ancestor of every
// later one).
type heldMark struct {
	time uint64
	cid  cid.Cid
}

// heldPrefix is where each log's heldMark is kept in the store (what
// peers held is known again after a restart, before any peer is back).
const heldPrefix = "messenger/held/"

// heldBook keeps each log's heldMark, so that the next reckoning looks
// only at what came after it.
type heldBook struct {
	mu    sync.Mutex
	marks map[replication.LogID]heldMark
}

func heldKey(id replication.LogID) []byte { return []byte(heldPrefix + hex.EncodeToString(id[:])) }

func (m *Messenger) heldMark(ctx context.Context, id replication.LogID) (heldMark, bool) {
	b := &m.held
	b.mu.Lock()
	mk, ok := b.marks[id]
	b.mu.Unlock()
	if ok {
		return mk, true
	}
	raw, err := m.cfg.Store.Get(ctx, heldKey(id))
	if err != nil {
		return heldMark{}, false
	}
	var rec struct {
		Time uint64 `json:"time"`
		CID  string `json:"cid"`
	}
	if json.Unmarshal(raw, &rec) != nil {
		return heldMark{}, false
	}
	c, err := cid.Decode(rec.CID)
	if err != nil {
		return heldMark{}, false
	}
	mk = heldMark{time: rec.Time, cid: c}
	m.setHeldMark(ctx, id, mk, false)
	return mk, true
}

// setHeldMark raises id's mark to mk (saving it when save).
func (m *Messenger) setHeldMark(ctx context.Context, id replication.LogID, mk heldMark, save bool) {
	b := &m.held
	b.mu.Lock()
	if b.marks == nil {
		b.marks = map[replication.LogID]heldMark{}
	}
	old, ok := b.marks[id]
	if ok && mk.time <= old.time {
		b.mu.Unlock()
		return
	}
	b.marks[id] = mk
	b.mu.Unlock()
	if !save {
		return
	}
	raw, _ := json.Marshal(map[string]any{"time": mk.time, "cid": mk.cid.String()})
	if err := m.cfg.Store.Put(ctx, heldKey(id), raw); err != nil {
		m.logger.Debug("save what peers hold", "log", id, "err", err)
	}
}

// unheldCache keeps each log's last reckoning with what it was made from:
// SyncStatus and every metrics scrape ask again, and the answer changes
// only when the log or what peers hold does.
type unheldCache struct {
	mu    sync.Mutex
	byLog map[replication.LogID]unheldResult
	walks atomic.Int64 // reckonings made (not answered from the cache)
}

type unheldResult struct {
	key [sha256.Size]byte
	out []cid.Cid
}

// unheldKey names what a reckoning of l depends on: the log (its heads
// name every entry, its length to be sure) and the heads peers hold. (The
// held mark only ever rises from a reckoning, which it then agrees with.)
func unheldKey(l *group.ReplicatedLog, remote []replication.PeerHeads) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(l.Len()))
	h.Write(n[:])
	heads := l.Heads()
	binary.BigEndian.PutUint64(n[:], uint64(len(heads)))
	h.Write(n[:])
	for _, c := range heads {
		h.Write([]byte(c.KeyString()))
	}
	var rs []string
	for _, ph := range remote {
		for _, c := range ph.Heads {
			rs = append(rs, c.KeyString())
		}
	}
	slices.Sort(rs)
	rs = slices.Compact(rs)
	for _, c := range rs {
		binary.BigEndian.PutUint64(n[:], uint64(len(c)))
		h.Write(n[:])
		h.Write([]byte(c))
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// unheld returns this device's entries of l, newest first, that no other
// node (member or replication node) is known to hold: entries that no
// head a peer told us (announcement, digest, head exchange) is, or
// descends from. At most maxUnheldScan are looked at. The answer is
// cached until the log or the peers' heads change.
func (m *Messenger) unheld(ctx context.Context, l *group.ReplicatedLog, id replication.LogID, remote []replication.PeerHeads) ([]cid.Cid, error) {
	key := unheldKey(l, remote)
	c := &m.unheldCache
	c.mu.Lock()
	r, ok := c.byLog[id]
	c.mu.Unlock()
	if ok && r.key == key {
		return slices.Clone(r.out), nil
	}
	out, err := m.reckonUnheld(ctx, l, id, remote)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.byLog == nil {
		c.byLog = map[replication.LogID]unheldResult{}
	}
	c.byLog[id] = unheldResult{key: key, out: slices.Clone(out)}
	c.mu.Unlock()
	return out, nil
}

// reckonUnheld is unheld without the cache.
func (m *Messenger) reckonUnheld(ctx context.Context, l *group.ReplicatedLog, id replication.LogID, remote []replication.PeerHeads) ([]cid.Cid, error) {
	m.unheldCache.walks.Add(1)
	dev := m.id.DeviceKey()
	mark, marked := m.heldMark(ctx, id)
	var own []*log.Entry
	scanned := 0
	for e, err := range l.Entries(ctx, log.Reverse()) {
		if err != nil {
			return nil, err
		}
		if marked && e.Time <= mark.time {
			break
		}
		if scanned++; scanned > maxHeldWalk {
			break
		}
		if bytes.Equal(e.Writer, dev[:]) {
			own = append(own, e)
			if len(own) >= maxUnheldScan {
				break
			}
		}
	}
	if len(own) == 0 {
		return nil, nil
	}
	floor := own[len(own)-1].Time
	// Walk down from the heads peers hold, no lower than the oldest own
	// entry in question.
	seen := map[string]bool{}
	var stack []cid.Cid
	for _, ph := range remote {
		stack = append(stack, ph.Heads...)
	}
	for n := 0; len(stack) > 0 && n < maxHeldWalk; n++ {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c.KeyString()] {
			continue
		}
		seen[c.KeyString()] = true
		e, err := l.Get(ctx, c)
		if err != nil || e.Time <= floor {
			continue // not here (yet), or below what is in question
		}
		stack = append(stack, e.Next...)
	}
	for i, e := range own {
		if seen[e.CID().KeyString()] {
			m.setHeldMark(ctx, id, heldMark{time: e.Time, cid: e.CID()}, true)
			out := make([]cid.Cid, i)
			for j := range i {
				out[j] = own[j].CID()
			}
			return out, nil
		}
	}
	out := make([]cid.Cid, len(own))
	for j, e := range own {
		out[j] = e.CID()
	}
	return out, nil
}

// groupLogs returns a held group's logs and their wire ids, metadata log
// first (nil if the group is not held or not replicated).
func (m *Messenger) groupLogs(gid crypto.PublicKey) (*group.Group, []replication.LogID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.groups[gid]
	if h == nil || len(h.logs) != 2 {
		return nil, nil
	}
	return h.g, slices.Clone(h.logs)
}

// remoteHeads returns, per log id, what peers said they hold.
func remoteHeads(st replication.Status) map[replication.LogID][]replication.PeerHeads {
	out := map[replication.LogID][]replication.PeerHeads{}
	for _, ls := range st.Logs {
		out[ls.ID] = ls.Remote
	}
	return out
}

// unheldOf returns, for the held group gid, the unheld own entries of its
// metadata log and of its message log.
func (m *Messenger) unheldOf(ctx context.Context, gid crypto.PublicKey, remote map[replication.LogID][]replication.PeerHeads) (meta, msgs []cid.Cid, err error) {
	g, ids := m.groupLogs(gid)
	if g == nil {
		return nil, nil, nil
	}
	if meta, err = m.unheld(ctx, g.MetaLog(), ids[0], remote[ids[0]]); err != nil {
		return nil, nil, err
	}
	if msgs, err = m.unheld(ctx, g.MessageLog(), ids[1], remote[ids[1]]); err != nil {
		return nil, nil, err
	}
	return meta, msgs, nil
}

// Unheld returns the CIDs of this device's messages in the group ref
// names that no other node is known to hold yet.
func (m *Messenger) Unheld(ctx context.Context, ref string) (map[cid.Cid]bool, error) {
	h, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	_, msgs, err := m.unheldOf(ctx, h.g.ID(), remoteHeads(m.repl.Status()))
	if err != nil {
		return nil, fmt.Errorf("messages held elsewhere in group %s: %w", h.g.ID().Fingerprint(), err)
	}
	out := make(map[cid.Cid]bool, len(msgs))
	for _, c := range msgs {
		out[c] = true
	}
	return out, nil
}

// flushPoll spaces the head exchanges of Flush.
const flushPoll = 100 * time.Millisecond

// Flush pushes what no other node is known to hold to the peers that
// share a group and are connected, until one of them holds every own
// entry (of both logs of every group) or ctx ends: each round swaps heads
// with them (they fetch what they lack; their answer says what they hold).
// A group with no peer of its own connected is not waited for. It returns
// how many own entries are still on no other node, per group fingerprint,
// and logs them.
func (m *Messenger) Flush(ctx context.Context) map[string]int {
	start := time.Now()
	pushed := false
	for {
		left := m.unheldCounts(ctx)
		connected := m.connectedPeers(ctx)
		waiting := 0
		for gid := range left {
			if _, ids := m.groupLogs(gid); len(ids) > 0 {
				if up, _ := m.reachability(ids, connected); up {
					waiting++
				}
			}
		}
		if waiting == 0 || ctx.Err() != nil {
			out := map[string]int{}
			for gid, n := range left {
				out[gid.Fingerprint()] = n
				m.logger.Warn("left unsent: entries of ours that no other node holds; they go out when this node runs again with a peer of the group",
					"group", gid.Fingerprint(), "entries", n)
			}
			if len(left) == 0 && pushed {
				m.logger.Info("everything sent is held by another node", "took", time.Since(start).Round(time.Millisecond).String())
			}
			if len(out) == 0 {
				return nil
			}
			return out
		}
		pushed = true
		var wg sync.WaitGroup
		for _, p := range m.connectedGroupPeers(connected) {
			wg.Go(func() {
				if err := m.repl.ExchangeHeads(ctx, p); err != nil {
					m.logger.Debug("flush: head exchange", "peer", p, "err", err)
				}
			})
		}
		wg.Wait()
		t := time.NewTimer(flushPoll)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// unheldCounts counts, per group, the own entries no other node is known
// to hold (groups with none left out).
func (m *Messenger) unheldCounts(ctx context.Context) map[crypto.PublicKey]int {
	remote := remoteHeads(m.repl.Status())
	out := map[crypto.PublicKey]int{}
	for _, gi := range m.Groups() {
		if gi.Left {
			continue
		}
		meta, msgs, err := m.unheldOf(ctx, gi.ID, remote)
		if err != nil {
			m.logger.Debug("held elsewhere", "group", gi.ID.Fingerprint(), "err", err)
			continue
		}
		if n := len(meta) + len(msgs); n > 0 {
			out[gi.ID] = n
		}
	}
	return out
}

// connectedGroupPeers returns the connected peers seen replicating one of
// our groups.
func (m *Messenger) connectedGroupPeers(connected map[string]bool) []string {
	b := &m.book
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for id := range b.peers {
		if connected[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
