package log

import (
	"context"
	"sync"
)

// subscription queues entries for one subscriber without bound, so a slow
// reader never blocks Append or Join and never loses an entry; its queue
// lives until its context ends or the log closes.
type subscription struct {
	mu      sync.Mutex
	queue   []*Entry
	wake    chan struct{} // capacity 1
	done    chan struct{}
	stopped bool
}

func (s *subscription) push(entries []*Entry) {
	s.mu.Lock()
	s.queue = append(s.queue, entries...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.done)
	}
}

// Subscribe returns a channel of the entries added to the log after the
// call: those of each Append, and those of each Join in total order, in the
// order the appends and joins committed. The channel is closed when ctx
// ends or the log is closed. Entries wait in an unbounded queue for a slow
// reader; a reader that stops reading must cancel ctx.
func (l *Log) Subscribe(ctx context.Context) <-chan *Entry {
	s := &subscription{wake: make(chan struct{}, 1), done: make(chan struct{})}
	out := make(chan *Entry)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		close(out)
		return out
	}
	l.subs[s] = struct{}{}
	l.mu.Unlock()

	go func() {
		defer close(out)
		defer func() {
			l.mu.Lock()
			delete(l.subs, s)
			l.mu.Unlock()
		}()
		for {
			s.mu.Lock()
			batch := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, e := range batch {
				select {
				case out <- e:
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}()
	return out
}

// notify hands committed entries to every subscriber; l.mu is held.
func (l *Log) notify(entries []*Entry) {
	for s := range l.subs {
		s.push(entries)
	}
}
