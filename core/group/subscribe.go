package group

import (
	"context"
	"sync"
)

// subscriber forwards delivered messages to one channel through an
// unbounded queue, so a slow reader never blocks the group and no message
// is dropped.
type subscriber struct {
	ch     chan *Message
	mu     sync.Mutex
	queue  []*Message
	wake   chan struct{}
	done   chan struct{}
	closer sync.Once
}

func (s *subscriber) push(m *Message) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) stop() { s.closer.Do(func() { close(s.done) }) }

func (s *subscriber) run(ctx context.Context, g *Group) {
	defer close(s.ch)
	defer func() {
		g.subMu.Lock()
		delete(g.subs, s)
		g.subMu.Unlock()
	}()
	for {
		s.mu.Lock()
		var m *Message
		if len(s.queue) > 0 {
			m = s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
		if m == nil {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case s.ch <- m:
		case <-s.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Subscribe returns a channel of messages as they are delivered (sent by
// this device, or received and opened), in delivery order. The channel is
// closed when ctx ends or the group is closed. Delivery order can differ
// from the total order when entries arrive out of order; Messages gives
// the total order.
func (g *Group) Subscribe(ctx context.Context) <-chan *Message {
	s := &subscriber{ch: make(chan *Message), wake: make(chan struct{}, 1), done: make(chan struct{})}
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.subMu.Lock()
		g.subs[s] = struct{}{}
		g.subMu.Unlock()
	}
	g.mu.Unlock()
	if closed {
		close(s.ch)
		return s.ch
	}
	go s.run(ctx, g)
	return s.ch
}

func (g *Group) notify(m *Message) {
	g.subMu.Lock()
	defer g.subMu.Unlock()
	for s := range g.subs {
		s.push(m)
	}
}
