package group

import (
	"context"
	"fmt"
	"slices"

	"github.com/skein-p2p/skein/core/crypto"
)

// Device removal: one device of an account leaves every group of the
// account while its other devices stay (a lost phone). A member account
// is removed with a rekey naming the account; a device is removed with a
// device-removed entry, a rekey naming devices instead: written by another
// device of the same account, it starts a new epoch whose secret is sealed
// to every active device except the removed ones, and records the removed
// devices' cutoffs. From then on the state treats the removed devices as
// it treats the devices of a removed account: entries they write past
// their cutoffs are refused (fold.go's second pass, and openMessage by
// Lamport time and ratchet index), and no chain key or epoch secret is
// sealed to them again.

// RemoveDevice removes one device of this device's own account from the
// group: a new epoch starts that the removed device cannot read, and what
// it writes past the cutoffs this device records is refused by every
// member and replication node. Removing this device itself, a device of
// another account (use RemoveMember) or a device not in the group is an
// error.
func (g *Group) RemoveDevice(ctx context.Context, device crypto.PublicKey) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.usable(); err != nil {
		return fmt.Errorf("remove device from group %s: %w", g.id.Fingerprint(), err)
	}
	if device.Equal(g.me.DeviceKey()) {
		return fmt.Errorf("remove device %s from group %s: %w: a device cannot remove itself; remove it from another device of the account",
			device.Fingerprint(), g.id.Fingerprint(), ErrConflict)
	}
	c := g.state.device(device)
	if c == nil || g.state.gone(c) {
		return fmt.Errorf("remove device %s from group %s: %w", device.Fingerprint(), g.id.Fingerprint(), ErrNotMember)
	}
	if !c.Account.Equal(g.me.AccountKey()) {
		return fmt.Errorf("remove device %s from group %s: %w: the device belongs to account %s, not this one (remove the member instead)",
			device.Fingerprint(), g.id.Fingerprint(), ErrConflict, c.Account.Fingerprint())
	}
	if err := g.removeDevices(ctx, []crypto.PublicKey{device}); err != nil {
		return fmt.Errorf("remove device %s from group %s: %w", device.Fingerprint(), g.id.Fingerprint(), err)
	}
	return nil
}

// HasDevice reports whether device is an active (added, not removed)
// device of the group.
func (g *Group) HasDevice(device crypto.PublicKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state.active(device)
}

// DeviceRemoved reports whether device was added to the group and then
// removed (its account or the device itself).
func (g *Group) DeviceRemoved(device crypto.PublicKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.state.device(device)
	return c != nil && g.state.gone(c)
}

// removeDevices writes a device-removed entry: a new epoch sealed to every
// active device but the removed ones, with their cutoffs. g.mu is held.
func (g *Group) removeDevices(ctx context.Context, devices []crypto.PublicKey) error {
	return g.newEpoch(ctx, MetaDeviceRemoved, slices.Clone(devices), g.cutoffsForDevices(devices),
		func(c *crypto.DeviceCertificate) bool { return containsKey(devices, c.Device) })
}

// cutoffsForDevices records what this device has seen of the given
// devices, as cutoffsFor does for accounts.
func (g *Group) cutoffsForDevices(devices []crypto.PublicKey) []Cutoff {
	var out []Cutoff
	for _, d := range devices {
		co := Cutoff{Device: d, MetaTime: g.lastMetaTime(d)}
		if s := g.stats[d]; s != nil {
			co.MsgTime = s.maxTime
			for e, l := range s.limits {
				co.Limits = append(co.Limits, EpochLimit{Epoch: e, Limit: l})
			}
			slices.SortFunc(co.Limits, func(a, b EpochLimit) int { return slices.Compare(a.Epoch[:], b.Epoch[:]) })
		}
		out = append(out, co)
	}
	slices.SortFunc(out, func(a, b Cutoff) int { return compareKeys(a.Device, b.Device) })
	return out
}

// applyDeviceRemoved applies a device-removed entry (see apply): the
// writer must be an active member of the parent epoch, and every device it
// removes a device of the writer's own account, added before, other than
// the writer.
func (g *Group) applyDeviceRemoved(st *metaState, it *metaItem, s *step) error {
	p, w := it.p, it.writer
	if st.epochs[p.Epoch] == nil {
		return fmt.Errorf("%w: %s", ErrUnknownEpoch, p.Epoch)
	}
	if !st.active(w) || !st.member(p.Epoch, w) {
		return fmt.Errorf("%w: writer %s of %s is not a member of epoch %s", ErrNotMember, w.Fingerprint(), it.typ, p.Epoch)
	}
	if _, ok := st.epochs[p.NewEpoch]; ok {
		return fmt.Errorf("%w: epoch id %s reused", ErrConflict, p.NewEpoch)
	}
	own, _ := st.accountOf(w)
	for _, d := range p.Removed {
		c := st.device(d)
		switch {
		case d.Equal(w):
			return fmt.Errorf("%w: a device-removed cannot remove its writer", ErrConflict)
		case c == nil:
			return fmt.Errorf("%w: device-removed names device %s, not in the group", ErrNotMember, d.Fingerprint())
		case !c.Account.Equal(own):
			return fmt.Errorf("%w: device %s belongs to account %s: only its own account removes a device", ErrBadAuthorization, d.Fingerprint(), c.Account.Fingerprint())
		}
	}
	s.flags |= applied
	st.removals = append(st.removals, it)
	for _, d := range p.Removed {
		st.removedDevs[devIDOf(d)]++
	}
	for _, c := range p.Cutoffs {
		if containsKey(p.Removed, c.Device) {
			if s.x == nil {
				s.x = &removal{}
			}
			s.x.old = append(s.x.old, st.mergeCutoff(c))
		}
	}
	ep := &epochInfo{id: p.NewEpoch, parent: p.Epoch, members: map[devID]bool{}, creator: it}
	for _, sh := range p.Shares {
		d := sh.Recipient.dev()
		ep.sealedTo = append(ep.sealedTo, d)
		if c := st.devices[d]; c != nil && !st.gone(c) {
			ep.members[d] = true
		}
	}
	st.epochs[p.NewEpoch] = ep
	st.epochOrder = append(st.epochOrder, p.NewEpoch)
	if it.mine != nil {
		return it.mine.err
	}
	return nil
}

// undoDeviceRemoved reverts applyDeviceRemoved.
func (g *Group) undoDeviceRemoved(st *metaState, it *metaItem, s *step) {
	p := it.p
	st.removals = st.removals[:len(st.removals)-1]
	delete(st.epochs, p.NewEpoch)
	st.epochOrder = st.epochOrder[:len(st.epochOrder)-1]
	if s.x != nil {
		st.restoreCutoffs(s.x.old)
	}
	for _, d := range p.Removed {
		id := devIDOf(d)
		if st.removedDevs[id]--; st.removedDevs[id] <= 0 {
			delete(st.removedDevs, id)
		}
	}
}

// DeviceState is one device the group's metadata log added.
type DeviceState struct {
	Cert *crypto.DeviceCertificate
	// Removed: the device, or its account, was removed.
	Removed bool
}

// Devices lists every device the group added, removed ones included,
// sorted by device key.
func (g *Group) Devices() []DeviceState {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]DeviceState, 0, len(g.state.devices))
	for _, c := range g.state.devices {
		out = append(out, DeviceState{Cert: c, Removed: g.state.gone(c)})
	}
	slices.SortFunc(out, func(a, b DeviceState) int { return compareKeys(a.Cert.Device, b.Cert.Device) })
	return out
}
