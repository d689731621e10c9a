package messenger

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
)

// The account's devices keep one list of groups: a device that creates,
// joins or accepts a group (a contact is a group) writes a group record in
// the account group, carrying an invitation to it; a device that leaves
// one writes a left record. Every other device of the account, watching
// the account group, joins the groups it lacks with those invitations and
// stops replicating the groups left. Records are application metadata of
// the account group, sealed under its epoch keys: a removed device reads
// none written after its removal.

// groupRecord is a group or left record of the account group.
type groupRecord struct {
	Type  string `json:"t"` // "group" or "left"
	Group string `json:"group"`
	Name  string `json:"name,omitempty"`
	Inv   string `json:"inv,omitempty"` // group: an invitation token
}

// accountJoinTimeout bounds one background join from a group record.
const accountJoinTimeout = 2 * time.Minute

// announceGroup tells the account's other devices about a group this
// device now holds. Without an account group (one device) it does
// nothing; a failure is logged: the group itself is held either way.
func (m *Messenger) announceGroup(ctx context.Context, gi GroupInfo) {
	ah := m.accountGroup()
	if ah == nil || gi.Kind == group.KindAccount {
		return
	}
	h, err := m.resolve(hex.EncodeToString(gi.ID[:]))
	if err != nil {
		return
	}
	inv, err := h.g.Invite(ctx)
	if err != nil {
		m.logger.Warn("tell the account's devices about a group", "group", gi.ID.Fingerprint(), "err", err)
		return
	}
	m.markDirty(h.g)
	m.putRecord(ctx, ah, groupRecord{Type: "group", Group: gi.ID.String(), Name: gi.Name, Inv: inv.Token()})
}

// announceLeft tells the account's other devices this device left a group.
func (m *Messenger) announceLeft(ctx context.Context, gid crypto.PublicKey) {
	if ah := m.accountGroup(); ah != nil {
		m.putRecord(ctx, ah, groupRecord{Type: "left", Group: gid.String()})
	}
}

func (m *Messenger) putRecord(ctx context.Context, ah *held, r groupRecord) {
	b, _ := json.Marshal(r)
	if err := ah.g.PutMetadata(ctx, b); err != nil {
		m.logger.Warn("write an account record", "type", r.Type, "group", r.Group, "err", err)
		return
	}
	m.markDirty(ah.g)
}

// wakeAccountSync makes the watcher look at the account group now.
func (m *Messenger) wakeAccountSync() {
	select {
	case m.dev.wake <- struct{}{}:
	default:
	}
}

// watchAccount applies the account group's records as they arrive, until
// the messenger closes.
func (m *Messenger) watchAccount() {
	defer close(m.dev.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-m.dev.stop
		cancel()
	}()
	for {
		var changed <-chan struct{}
		if ah := m.accountGroup(); ah != nil {
			changed = ah.g.Changed()
			m.applyRecords(ctx, ah)
		}
		select {
		case <-m.dev.stop:
			return
		case <-changed:
		case <-m.dev.wake:
		}
	}
}

// applyRecords joins the groups the account's records name that this
// device lacks, and marks left the groups another device left.
func (m *Messenger) applyRecords(ctx context.Context, ah *held) {
	m.dev.mu.Lock()
	linking := m.dev.linking
	m.dev.mu.Unlock()
	if linking {
		return // JoinAccount joins the groups itself, then wakes this
	}
	left := map[string]bool{}
	var joins []groupRecord
	for _, md := range ah.g.Metadata() {
		var r groupRecord
		if md.Data == nil || json.Unmarshal(md.Data, &r) != nil {
			continue
		}
		switch r.Type {
		case "left":
			left[strings.ToLower(r.Group)] = true
		case "group":
			joins = append(joins, r)
		}
	}
	for _, r := range joins {
		gid := strings.ToLower(r.Group)
		if left[gid] {
			continue
		}
		if h, err := m.resolve(gid); err == nil && h.g.ID().String() == gid {
			continue // held (or left here)
		}
		m.dev.mu.Lock()
		busy := m.dev.joining[gid]
		if !busy {
			m.dev.joining[gid] = true
		}
		m.dev.mu.Unlock()
		if busy {
			continue
		}
		m.dev.wg.Add(1)
		go func() {
			defer m.dev.wg.Done()
			jctx, cancel := context.WithTimeout(ctx, accountJoinTimeout)
			defer cancel()
			gi, err := m.joinGroup(jctx, r.Inv, r.Name)
			m.dev.mu.Lock()
			delete(m.dev.joining, gid)
			m.dev.mu.Unlock()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					m.logger.Warn("join a group another device of the account holds", "group", gid, "err", err)
				}
				return
			}
			m.logger.Info("joined a group another device of the account holds", "group", gi.ID.Fingerprint(), "name", gi.Name)
		}()
	}
	for gid := range left {
		h, err := m.resolve(gid)
		if err != nil || h.g.ID().String() != gid || m.recordOf(h).Left {
			continue
		}
		if err := m.markLeft(ctx, h); err != nil {
			m.logger.Warn("stop holding a group another device left", "group", gid, "err", err)
		}
	}
}

// recordOf returns h's record (written under m.mu by Leave and markLeft).
func (m *Messenger) recordOf(h *held) record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return h.rec
}

// markLeft stops replicating a group another device of the account left
// (the account is no longer a member), keeping its history readable.
func (m *Messenger) markLeft(ctx context.Context, h *held) error {
	m.mu.Lock()
	h.rec.Left = true
	rec, ids := h.rec, h.logs
	h.logs = nil
	m.mu.Unlock()
	m.unreplicate(ids)
	return m.persist(ctx, h.g, rec)
}
