package sim

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
)

// Group is a multi-member group of the cluster's nodes, with delivery
// tracking: every member's delivered messages are followed from the moment
// it joined.
type Group struct {
	c *Cluster
	// ID is the group's public key; Ref the reference every member's
	// messenger resolves (its hex id).
	ID  crypto.PublicKey
	Ref string

	mu       sync.Mutex
	members  []*member // current members, creator first
	byNode   map[*Node]*member
	sent     []cid.Cid
	tracks   map[cid.Cid]*track
	removed  []*Node
	settleAt int // index of the first member not yet seen settled

	deliveries atomic.Uint64
}

type member struct {
	node   *Node
	seen   map[cid.Cid]struct{}
	listed time.Time // last fallback listing of its messages
	cancel context.CancelFunc
}

// track follows one message: when it was sent and who has it.
type track struct {
	sent    bool
	sentAt  time.Time
	reached int
	last    time.Time
	done    chan struct{} // closed when every member had it at the last check
}

// Delivery says how far one message got.
type Delivery struct {
	// Reached: current members that have it; Members: current members.
	Reached, Members int
	// Last: from Send to the latest delivery so far (0 if not sent
	// through Group.Send).
	Last time.Duration
}

// GroupStats counts a group's traffic.
type GroupStats struct {
	Members int
	// Sent: messages sent through Send; Deliveries: messages delivered
	// to members (each member and message once, senders included).
	Sent, Deliveries uint64
	Removed          int
}

// Settlement says how settled a group is.
type Settlement struct {
	// Members: current members; Settled: those that see exactly the
	// current members, the same epoch as the first member, and every
	// message sent through Send.
	Members, Settled int
	// Lagging names up to 5 members not settled, with what they lack.
	Lagging []string
}

// Done reports whether every member is settled.
func (s Settlement) Done() bool { return s.Settled == s.Members }

// NewGroup makes a group of members (members[0] creates it and invites the
// others, who join concurrently) and returns once every member is settled
// (see Settled) or ctx ends. nil members: every node of the cluster.
func (c *Cluster) NewGroup(ctx context.Context, members []*Node) (*Group, error) {
	if members == nil {
		members = c.Nodes()
	}
	if len(members) == 0 {
		return nil, errors.New("sim: a group needs a member")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextGrp++
	name := fmt.Sprintf("g%d", c.nextGrp)
	c.mu.Unlock()

	creator := members[0]
	gi, err := creator.Messenger.CreateGroup(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("sim: %s creates group: %w", creator.ID, err)
	}
	g := &Group{c: c, ID: gi.ID, Ref: hex.EncodeToString(gi.ID[:]), byNode: map[*Node]*member{},
		tracks: map[cid.Cid]*track{}}
	if err := g.follow(creator); err != nil {
		return nil, err
	}
	start := time.Now()
	tokens := make([]string, len(members))
	for i, n := range members[1:] {
		inv, err := creator.Messenger.Invite(ctx, g.Ref)
		if err != nil {
			return g, fmt.Errorf("sim: invite %s: %w", n.ID, err)
		}
		tokens[i+1] = inv.Token()
		if (i+1)%100 == 0 || i+2 == len(members) {
			c.progress("invite", i+1, len(members)-1, start)
		}
	}
	start = time.Now()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	var joined atomic.Int64
	sem := make(chan struct{}, c.cfg.JoinParallelism)
	for i, n := range members[1:] {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return g, fmt.Errorf("sim: joins: %w", ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := n.Messenger.JoinGroup(ctx, tokens[i+1], name)
			if err == nil {
				err = g.follow(n)
			}
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("sim: %s joins: %w", n.ID, err))
				errMu.Unlock()
				return
			}
			if d := int(joined.Add(1)); d%50 == 0 || d == len(members)-1 {
				c.progress("join", d, len(members)-1, start)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return g, err
	}
	c.mu.Lock()
	c.groups = append(c.groups, g)
	c.mu.Unlock()
	return g, g.WaitSettled(ctx)
}

// follow adds n as a member and follows its deliveries.
func (g *Group) follow(n *Node) error {
	ctx, cancel := context.WithCancel(g.c.ctx)
	ch, _, err := n.Messenger.Subscribe(ctx, g.Ref)
	if err != nil {
		cancel()
		return fmt.Errorf("sim: %s follows group: %w", n.ID, err)
	}
	m := &member{node: n, seen: map[cid.Cid]struct{}{}, cancel: cancel}
	g.mu.Lock()
	g.members = append(g.members, m)
	g.byNode[n] = m
	g.mu.Unlock()
	go func() {
		for msg := range ch {
			g.delivered(m, msg.CID, time.Now())
		}
	}()
	return nil
}

func (g *Group) delivered(m *member, c cid.Cid, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := m.seen[c]; ok {
		return
	}
	m.seen[c] = struct{}{}
	if g.byNode[m.node] != m {
		return // removed
	}
	t := g.tracks[c]
	if t == nil {
		t = &track{done: make(chan struct{})}
		g.tracks[c] = t
	}
	t.reached++
	if at.After(t.last) {
		t.last = at
	}
	g.deliveries.Add(1)
	m.node.delivered.Add(1)
	if t.sent && t.reached >= len(g.members) {
		closeOnce(t.done)
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Members returns the current members' nodes, creator first.
func (g *Group) Members() []*Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*Node, len(g.members))
	for i, m := range g.members {
		out[i] = m.node
	}
	return out
}

// Send sends body from a member and returns the message.
func (g *Group) Send(ctx context.Context, from *Node, body []byte) (*group.Message, error) {
	at := time.Now()
	msg, err := from.Messenger.Send(ctx, g.Ref, body)
	if err != nil {
		return nil, fmt.Errorf("sim: %s sends: %w", from.ID, err)
	}
	from.sent.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tracks[msg.CID]
	if t == nil {
		t = &track{done: make(chan struct{})}
		g.tracks[msg.CID] = t
	}
	t.sent, t.sentAt = true, at
	g.sent = append(g.sent, msg.CID)
	if t.reached >= len(g.members) {
		closeOnce(t.done)
	}
	return msg, nil
}

// Delivery returns how far the message with CID c got.
func (g *Group) Delivery(c cid.Cid) Delivery {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := Delivery{Members: len(g.members)}
	if t := g.tracks[c]; t != nil {
		d.Reached = t.reached
		if t.sent && !t.last.IsZero() {
			d.Last = t.last.Sub(t.sentAt)
		}
	}
	return d
}

// WaitDelivered waits until every current member has the message with
// CID c (sent through Send) and returns the time from Send to the last
// delivery.
func (g *Group) WaitDelivered(ctx context.Context, c cid.Cid) (time.Duration, error) {
	g.mu.Lock()
	t := g.tracks[c]
	g.mu.Unlock()
	if t == nil || !t.sent {
		return 0, fmt.Errorf("sim: message %s was not sent through this group", c)
	}
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return g.Delivery(c).Last, nil
		case <-ctx.Done():
			d := g.Delivery(c)
			return 0, fmt.Errorf("sim: message reached %d of %d members: %w", d.Reached, d.Members, ctx.Err())
		case <-tick.C:
			d := g.Delivery(c)
			g.c.progress("deliver", d.Reached, d.Members, start)
		}
	}
}

// Remove has by remove member from the group (a rekey: a new epoch
// without it) and waits until the remaining members are settled.
func (g *Group) Remove(ctx context.Context, by, member *Node) error {
	acct := member.Messenger.Identity().AccountKey()
	if _, err := by.Messenger.RemoveMember(ctx, g.Ref, hex.EncodeToString(acct[:])); err != nil {
		return fmt.Errorf("sim: %s removes %s: %w", by.ID, member.ID, err)
	}
	g.mu.Lock()
	if m := g.byNode[member]; m != nil {
		m.cancel()
		delete(g.byNode, member)
		for i, x := range g.members {
			if x == m {
				g.members = append(g.members[:i], g.members[i+1:]...)
				break
			}
		}
		g.removed = append(g.removed, member)
	}
	// Removing someone may complete a message's delivery.
	for _, t := range g.tracks {
		if t.sent && t.reached >= len(g.members) {
			closeOnce(t.done)
		}
	}
	g.settleAt = 0
	g.mu.Unlock()
	return g.WaitSettled(ctx)
}

// Stats returns the group's counters.
func (g *Group) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return GroupStats{Members: len(g.members), Sent: uint64(len(g.sent)), Deliveries: g.deliveries.Load(),
		Removed: len(g.removed)}
}

// Settled checks every member (see Settlement).
func (g *Group) Settled(ctx context.Context) Settlement {
	g.mu.Lock()
	members := append([]*member(nil), g.members...)
	g.mu.Unlock()
	s := Settlement{Members: len(members)}
	if len(members) == 0 {
		return s
	}
	epoch, err := g.epoch(members[0].node)
	for _, m := range members {
		why := g.lacks(ctx, m, len(members), epoch, err)
		if why == "" {
			s.Settled++
		} else if len(s.Lagging) < 5 {
			s.Lagging = append(s.Lagging, m.node.ID+": "+why)
		}
	}
	return s
}

func (g *Group) epoch(n *Node) (group.EpochID, error) {
	gi, err := n.Messenger.Resolve(g.Ref)
	return gi.Epoch, err
}

// syncDetail describes m's replication of the group's logs (entries,
// missing remote heads, given up, joins queued).
func (g *Group) syncDetail(ctx context.Context, m *member) string {
	st, err := m.node.Messenger.SyncStatus(ctx, g.Ref)
	if err != nil || len(st) == 0 {
		return ""
	}
	out := ""
	for _, l := range st[0].Logs {
		out += fmt.Sprintf("; %s: %d entries, %d heads missing, %d given up", l.Log, l.Entries, l.Missing, l.GivenUp)
	}
	return out
}

// lacks says what member m lacks to be settled ("" if nothing).
func (g *Group) lacks(ctx context.Context, m *member, members int, epoch group.EpochID, epochErr error) string {
	if epochErr != nil {
		return epochErr.Error()
	}
	ms, err := m.node.Messenger.Members(g.Ref)
	if err != nil {
		return err.Error()
	}
	if len(ms) != members {
		return fmt.Sprintf("sees %d members, want %d", len(ms), members)
	}
	if e, err := g.epoch(m.node); err != nil || e != epoch {
		return "another epoch"
	}
	missing := g.missing(m)
	if missing > 0 && time.Since(m.listed) > 2*time.Second {
		// Messages delivered before it followed the group (while joining).
		m.listed = time.Now()
		if msgs, err := m.node.Messenger.Messages(ctx, g.Ref, messenger.ListOptions{}); err == nil {
			for _, msg := range msgs {
				g.delivered(m, msg.CID, time.Now())
			}
		}
		missing = g.missing(m)
	}
	if missing > 0 {
		return fmt.Sprintf("lacks %d messages", missing)
	}
	return ""
}

func (g *Group) missing(m *member) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := 0
	for _, c := range g.sent {
		if _, ok := m.seen[c]; !ok {
			k++
		}
	}
	return k
}

// WaitSettled waits until every member is settled or ctx ends (the error
// then says who lags and why). It checks one member at a time, moving on
// once it is settled, then every member once more.
func (g *Group) WaitSettled(ctx context.Context) error {
	start := time.Now()
	wait := 20 * time.Millisecond
	var syncShown time.Time
	for {
		g.mu.Lock()
		members := append([]*member(nil), g.members...)
		i := g.settleAt
		g.mu.Unlock()
		if len(members) == 0 {
			return nil
		}
		epoch, err := g.epoch(members[0].node)
		why := ""
		for i < len(members) {
			if why = g.lacks(ctx, members[i], len(members), epoch, err); why != "" {
				why = members[i].node.ID + ": " + why
				break
			}
			i++
			wait = 20 * time.Millisecond
		}
		g.mu.Lock()
		g.settleAt = i
		g.mu.Unlock()
		if why != "" && g.c.cfg.Progress != nil && time.Since(syncShown) > 5*time.Second {
			// What the lagging member's logs lack, now and then: a
			// progress line, not a poll of every member's state.
			syncShown = time.Now()
			why += g.syncDetail(ctx, members[i])
		}
		g.c.progressDetail("settle", i, len(members), start, why)
		if i == len(members) {
			s := g.Settled(ctx)
			if s.Done() {
				return nil
			}
			g.mu.Lock()
			g.settleAt = 0
			g.mu.Unlock()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s := g.Settled(context.WithoutCancel(ctx))
			return fmt.Errorf("sim: group not settled (%d of %d members; %v): %w", s.Settled, s.Members, s.Lagging, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}
