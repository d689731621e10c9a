package group

import (
	"context"

	"github.com/skein-p2p/skein/internal/queue"
)

// subscriber forwards delivered messages to one channel through an
// unbounded queue, so a slow reader never blocks the group and no message
// is dropped.
type subscriber = queue.Queue[*Message]

// Subscribe returns a channel of messages as they are delivered (sent by
// this device, or received and opened), in delivery order. The channel is
// closed when ctx ends or the group is closed. Delivery order can differ
// from the total order when entries arrive out of order; Messages gives
// the total order.
func (g *Group) Subscribe(ctx context.Context) <-chan *Message {
	s := queue.New[*Message](0)
	ch := make(chan *Message)
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.subMu.Lock()
		g.subs[s] = struct{}{}
		g.subMu.Unlock()
	}
	g.mu.Unlock()
	if closed {
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		defer func() {
			g.subMu.Lock()
			delete(g.subs, s)
			g.subMu.Unlock()
		}()
		s.Forward(ctx, ch)
	}()
	return ch
}

func (g *Group) notify(m *Message) {
	g.subMu.Lock()
	defer g.subMu.Unlock()
	for s := range g.subs {
		s.Push(m)
	}
}
