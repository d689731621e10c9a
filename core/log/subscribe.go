package log

import (
	"context"

	"github.com/skein-p2p/skein/internal/queue"
)

// subscription queues entries for one subscriber without bound, so a slow
// reader never blocks Append or Join and never loses an entry; its queue
// lives until its context ends or the log closes.
type subscription = queue.Queue[*Entry]

// Subscribe returns a channel of the entries added to the log after the
// call: those of each Append, and those of each Join in total order, in the
// order the appends and joins committed. The channel is closed when ctx
// ends or the log is closed. Entries wait in an unbounded queue for a slow
// reader; a reader that stops reading must cancel ctx.
func (l *Log) Subscribe(ctx context.Context) <-chan *Entry {
	s := queue.New[*Entry](0)
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
		s.Forward(ctx, out)
	}()
	return out
}

// notify hands committed entries to every subscriber; l.mu is held.
func (l *Log) notify(entries []*Entry) {
	for s := range l.subs {
		s.Push(entries...)
	}
}
