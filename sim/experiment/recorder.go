package experiment

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/skein-p2p/skein/sim"
	"github.com/skein-p2p/skein/sim/report"
	"github.com/skein-p2p/skein/sim/scenario"
)

// recorder follows every member's deliveries (its own subscription to
// each group, apart from package sim's) and knows when the run settled.
type recorder struct {
	plan  *scenario.Plan
	nodes []*sim.Node

	mu         sync.Mutex
	t0         time.Time
	sends      map[int]*report.Send // by seq, once sent
	sentAt     map[int]time.Time
	deliveries []report.Delivery
	marks      []report.Mark
	got        map[[2]int]bool // (seq, node) delivered
	held       map[[2]int]int  // (group, node) -> messages held, own included
	sentIn     []int           // messages sent per group
	up         []bool
	changed    chan struct{} // signalled on every delivery
}

func newRecorder(plan *scenario.Plan, nodes []*sim.Node) *recorder {
	r := &recorder{plan: plan, nodes: nodes, sends: map[int]*report.Send{}, sentAt: map[int]time.Time{},
		got: map[[2]int]bool{}, held: map[[2]int]int{}, sentIn: make([]int, len(plan.Groups)),
		up: make([]bool, len(nodes)), changed: make(chan struct{}, 1)}
	for i := range r.up {
		r.up[i] = true
	}
	return r
}

func (r *recorder) start(t0 time.Time) {
	r.mu.Lock()
	r.t0 = t0
	r.mu.Unlock()
}

func (r *recorder) setUp(node int, up bool) {
	r.mu.Lock()
	r.up[node] = up
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// sent records a send just before it is made.
func (r *recorder) sent(ev scenario.Event, size int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.plan.Groups[ev.Group]
	r.sends[ev.Seq] = &report.Send{Seq: ev.Seq, Group: g.Name, From: r.nodes[ev.Node].ID, Size: size,
		At: now.Sub(r.t0), Members: len(g.Members)}
	r.sentAt[ev.Seq] = now
	r.sentIn[ev.Group]++
	r.held[[2]int{ev.Group, ev.Node}]++
}

// mark records a network event at now.
func (r *recorder) mark(kind, node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.marks = append(r.marks, report.Mark{At: time.Since(r.t0), Kind: kind, Node: node})
}

// follow subscribes to node's deliveries in group gi.
func (r *recorder) follow(ctx context.Context, gi int, ref string, idx int, n *sim.Node) error {
	ch, _, err := n.Messenger.Subscribe(ctx, ref)
	if err != nil {
		return fmt.Errorf("%s follows group %s: %w", n.ID, r.plan.Groups[gi].Name, err)
	}
	go func() {
		for msg := range ch {
			if seq, ok := scenario.BodySeq(msg.Body); ok {
				r.delivered(gi, seq, idx, time.Now())
			}
		}
	}()
	return nil
}

func (r *recorder) delivered(gi, seq, node int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sends[seq]
	if s == nil || s.From == r.nodes[node].ID || r.got[[2]int{seq, node}] || s.Group != r.plan.Groups[gi].Name {
		return
	}
	r.got[[2]int{seq, node}] = true
	r.held[[2]int{gi, node}]++
	r.deliveries = append(r.deliveries, report.Delivery{Seq: seq, Group: s.Group, From: s.From, To: r.nodes[node].ID,
		Size: s.Size, Sent: s.At, Delivered: at.Sub(r.t0)})
	r.signal()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deliveries)
}

// expected is the deliveries a converged run makes so far: for each
// message sent, the other members of its group.
func (r *recorder) expected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.sends {
		n += s.Members - 1
	}
	return n
}

// settled reports whether every member that is up holds every message
// sent in its groups.
func (r *recorder) settled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for gi, g := range r.plan.Groups {
		for _, m := range g.Members {
			if r.up[m] && r.held[[2]int{gi, m}] < r.sentIn[gi] {
				return false
			}
		}
	}
	return true
}

// waitSettled waits until settled or ctx ends; tick is called now and
// then for progress.
func (r *recorder) waitSettled(ctx context.Context, tick func()) bool {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for !r.settled() {
		select {
		case <-ctx.Done():
			return r.settled()
		case <-r.changed:
		case <-t.C:
			tick()
		}
	}
	return true
}

// result returns the sends and deliveries recorded.
func (r *recorder) result() *report.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &report.Result{Deliveries: append([]report.Delivery(nil), r.deliveries...),
		Marks: append([]report.Mark(nil), r.marks...)}
	for _, s := range r.sends {
		res.Sends = append(res.Sends, *s)
		res.Expected += s.Members - 1
	}
	return res
}
