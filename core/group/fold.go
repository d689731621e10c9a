package group

import (
	"context"
	"fmt"
	"slices"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// The membership state is defined on the whole metadata log, in two
// passes (docs/protocol.md, "Removal in the state"): pass 0 applies every
// entry in total order; its result names the removed accounts and the
// cutoffs of their devices (the filter); pass 1 applies every entry again
// but refuses those by a device of a removed account past its cutoff.
// The state is pass 1's (pass 0's while nothing is removed: the passes
// are then the same).
//
// Computing that from scratch for every new entry costs the whole log per
// entry. Instead the group keeps the decoded entries (items, in total
// order) and both passes' states at the end of the log. New entries are
// inserted among the items; each pass's state is taken back (undo, entry
// by entry from the end) to the first position where something changed
// and brought forward from there. For an entry that sorts after the
// others that is one apply; for one that sorts k entries back, k undos
// and k+1 applies; nothing is read from the block store again.
// TestIncrementalMatchesReplay checks, over random arrival orders, that
// the result is exactly the from-scratch one.

// noCutoff marks, in a filter, a device of a removed account that no
// removal recorded a cutoff for: all its entries are refused.
const noCutoff = ^uint64(0)

// filter maps each removed device (of a removed account, or removed
// itself) pass 0 found to what of its entries the removals keep.
type filter map[crypto.PublicKey]*kept

// kept is what a removed device's entries must satisfy to be applied: a
// Lamport time at most cut (its cutoff metaTime, noCutoff if none), and
// being in the causal past of a removal that covers it (seen: their CIDs,
// as KeyString). The time alone let a removed device backdate an entry
// below its cutoff, linked to heads older than its last entry, that its
// remover never saw (an invitation for an outsider, say); the causal past
// of the removal entry is exactly what its writer had seen.
type kept struct {
	cut  uint64
	seen map[string]bool
}

// pastCutoff refuses an entry by a removed device written after the last
// entry of it the remover had seen, or not seen by any remover. A
// member-left is exempt: it is the removal itself (apply refuses a second
// one, its writer being no longer active).
func (f filter) pastCutoff(it *metaItem) error {
	if it.err == nil && it.typ == MetaMemberLeft {
		return nil
	}
	k, ok := f[it.writer]
	if !ok {
		return nil
	}
	if k.cut != noCutoff && it.time <= k.cut && k.seen[it.cid.KeyString()] {
		return nil
	}
	if k.cut != noCutoff && it.time <= k.cut {
		return fmt.Errorf("%w: entry by device %s at time %d, below its cutoff but unseen by its remover (backdated)", ErrRemoved, it.writer.Fingerprint(), it.time)
	}
	return fmt.Errorf("%w: entry by device %s at time %d, after its removal", ErrRemoved, it.writer.Fingerprint(), it.time)
}

// computeFilter returns the filter pass 0's state defines over the
// entries items (all of the log's, in order).
func computeFilter(st *metaState, items []*metaItem) filter {
	if len(st.removed) == 0 && len(st.removedDevs) == 0 {
		return nil
	}
	f := filter{}
	for _, c := range st.devices {
		if !st.gone(c) {
			continue
		}
		k := &kept{cut: noCutoff, seen: map[string]bool{}}
		if cs := st.cutoffs[c.Device]; cs != nil {
			k.cut = cs.metaTime
		}
		f[c.Device] = k
	}
	if len(f) == 0 || len(st.removals) == 0 {
		return f
	}
	byCID := make(map[string]*metaItem, len(items))
	for _, it := range items {
		byCID[it.cid.KeyString()] = it
	}
	for _, r := range st.removals {
		covers := func(d crypto.PublicKey) bool {
			c := st.device(d)
			if c == nil {
				return false
			}
			switch r.typ {
			case MetaRekey:
				return containsKey(r.p.Removed, c.Account)
			case MetaDeviceRemoved:
				return containsKey(r.p.Removed, d)
			case MetaMemberLeft:
				a, ok := st.accountOf(r.writer)
				return ok && a.Equal(c.Account)
			}
			return false
		}
		visited := map[string]bool{}
		stack := []*metaItem{r}
		for len(stack) > 0 {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, n := range it.next {
				k := n.KeyString()
				x := byCID[k]
				if x == nil || visited[k] {
					continue
				}
				visited[k] = true
				if kp := f[x.writer]; kp != nil && covers(x.writer) {
					kp.seen[k] = true
				}
				stack = append(stack, x)
			}
		}
	}
	return f
}

// rewind takes pass's state back to position p: it undoes, from the end,
// every item at or after p that the pass applied.
func (g *Group) rewind(st *metaState, pass, p int) {
	for i := len(g.items) - 1; i >= p; i-- {
		it := g.items[i]
		if s := &it.steps[pass]; s.done {
			g.undo(st, it, s)
			*s = step{}
		}
	}
}

// forward applies the items from position p on to pass's state; pass 1
// leaves out what f refuses.
func (g *Group) forward(st *metaState, pass, p int, f filter) {
	for _, it := range g.items[p:] {
		if pass == 1 {
			if err := f.pastCutoff(it); err != nil {
				it.steps[1] = step{done: true, err: err}
				continue
			}
		}
		it.steps[pass] = g.apply(st, it)
	}
}

// affectsFilter reports whether applying or undoing it may change the
// filter (given the removed accounts of pass 0's state after the change).
func affectsFilter(st *metaState, it *metaItem, s *step) bool {
	if s.flags == 0 {
		return false
	}
	switch it.typ {
	case MetaRekey, MetaMemberLeft, MetaDeviceRemoved:
		return true
	case MetaDeviceAdded:
		return s.flags&setDevice != 0 && st.gone(it.cert)
	}
	return false
}

// addItems inserts new items (each a new entry of the log) and brings the
// state up to date; it returns the entries refused for the first time.
// g.mu is held.
func (g *Group) addItems(batch []*metaItem) []Rejection {
	if len(batch) == 0 {
		return nil
	}
	slices.SortFunc(batch, compareItems)
	for _, it := range batch {
		g.admitted.add(it)
	}
	p := g.insert(batch)
	// The entries pass 0 undoes or applies are those that may change the
	// filter.
	var touched []*metaItem
	for _, it := range g.items[p:] {
		if it.steps[0].done && it.steps[0].flags != 0 {
			touched = append(touched, it)
		}
	}
	// Remember what the undone steps did before rewind clears them.
	undone := make([]step, len(touched))
	for i, it := range touched {
		undone[i] = it.steps[0]
	}
	g.rewind(g.s1, 0, p)
	g.forward(g.s1, 0, p, nil)

	changed := false
	for i, it := range touched {
		changed = changed || affectsFilter(g.s1, it, &undone[i])
	}
	for _, it := range g.items[p:] {
		changed = changed || affectsFilter(g.s1, it, &it.steps[0])
	}
	from := p // where the state's verdicts may have changed
	if changed {
		f := computeFilter(g.s1, g.items)
		switch {
		case len(f) == 0:
			if g.s2 != nil {
				for _, it := range g.items {
					it.steps[1] = step{}
				}
				g.s2, from = nil, 0
			}
		case g.s2 == nil:
			g.s2 = newMetaState()
			g.forward(g.s2, 1, 0, f)
			from = 0
		default:
			p2 := p
			for i, it := range g.items[:p] {
				if (f.pastCutoff(it) == nil) != (g.filter.pastCutoff(it) == nil) {
					p2 = i
					break
				}
			}
			g.rewind(g.s2, 1, p2)
			g.forward(g.s2, 1, p2, f)
			from = p2
		}
		g.filter = f
	} else if g.s2 != nil {
		g.rewind(g.s2, 1, p)
		g.forward(g.s2, 1, p, g.filter)
	}
	return g.settle(from)
}

// insert merges the sorted batch into the items and returns the position
// of the first.
func (g *Group) insert(batch []*metaItem) int {
	p, _ := slices.BinarySearchFunc(g.items, batch[0], compareItems)
	if len(batch) < 16 {
		for _, it := range batch {
			i, _ := slices.BinarySearchFunc(g.items, it, compareItems)
			g.items = slices.Insert(g.items, i, it)
		}
		return p
	}
	merged := make([]*metaItem, 0, len(g.items)+len(batch))
	merged = append(merged, g.items[:p]...)
	old, i := g.items[p:], 0
	for _, it := range batch {
		for i < len(old) && compareItems(old[i], it) < 0 {
			merged = append(merged, old[i])
			i++
		}
		merged = append(merged, it)
	}
	g.items = append(merged, old[i:]...)
	return p
}

// settle makes the final state current after the items from position
// from on were (re)applied: it reports refusals not reported before,
// learns the epoch secrets shared with this device and signals the
// change.
func (g *Group) settle(from int) []Rejection {
	pass := 0
	g.state = g.s1
	if g.s2 != nil {
		pass, g.state = 1, g.s2
	}
	st := g.state
	me := g.me.DeviceKey()
	var rejected []Rejection
	for _, it := range g.items[from:] {
		s := &it.steps[pass]
		if s.err != nil {
			k := it.cid.KeyString()
			if !g.reported[k] {
				g.reported[k] = true
				rejected = append(rejected, Rejection{Log: "meta", CID: it.cid, Err: s.err})
				g.logger.Warn("metadata entry refused", "cid", it.cid.String(), "err", s.err)
			}
		}
		// An epoch secret shared with this device, in an epoch it is a
		// member of, joins the secrets it holds (and saves).
		if it.mine != nil && it.mine.secret != nil && s.flags&applied != 0 {
			if ep := st.epochs[it.p.NewEpoch]; ep != nil && ep.creator == it && st.member(ep.id, me) {
				if _, ok := g.secrets[ep.id]; !ok {
					k := *it.mine.secret
					g.secrets[ep.id] = &k
				}
			}
		}
	}
	if g.kind == 0 && st.created {
		g.kind = st.kind // a replication node learns the kind from the signed group-created
	}
	g.metaVersion++
	g.signalChanged()
	return rejected
}

// rebuild computes the state from scratch from the metadata log in the
// store, reading and decoding every entry once: when a group is opened
// (its storage may hold entries already). It returns the entries refused.
// g.mu is held.
func (g *Group) rebuild(ctx context.Context) ([]Rejection, error) {
	var items []*metaItem
	for e, err := range g.meta.Entries(ctx) {
		if err != nil {
			return nil, fmt.Errorf("read metadata log: %w", err)
		}
		items = append(items, g.decodeItem(g.keys, e))
	}
	g.items, g.s1, g.s2, g.filter, g.admitted = nil, newMetaState(), nil, nil, newAdmission()
	return g.addItems(items), nil
}

// decodeEntries decodes the entries a join prepared, keyed by CID. It
// takes no lock (see decodeItem).
func (g *Group) decodeEntries(k *logKeys, entries []*log.Entry) map[string]*metaItem {
	out := make(map[string]*metaItem, len(entries))
	for _, e := range entries {
		out[e.CID().KeyString()] = g.decodeItem(k, e)
	}
	return out
}

// itemFor returns the decoded item of a metadata entry the log is about
// to admit: decoded beforehand by the join, or now. g.mu is held.
func (g *Group) itemFor(e *log.Entry) *metaItem {
	k := e.CID().KeyString()
	if it := g.inflight[k]; it != nil {
		return it
	}
	it := g.decodeItem(g.keys, e)
	if g.inflight == nil {
		g.inflight = map[string]*metaItem{}
	}
	g.inflight[k] = it
	return it
}

// takeItems returns the decoded items of entries the log added and
// forgets every other decoded entry. g.mu is held.
func (g *Group) takeItems(added []*log.Entry) []*metaItem {
	out := make([]*metaItem, 0, len(added))
	for _, e := range added {
		out = append(out, g.itemFor(e))
	}
	g.inflight = nil
	return out
}
