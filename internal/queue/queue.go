// Package queue hands values from producers that must never block to one
// channel reader that may be slow: values wait in a queue (unbounded, or
// bounded with drops reported to the producer) and a forwarding goroutine
// feeds them to the reader in order.
//
//	q := queue.New[*Entry](0)          // unbounded
//	go q.Forward(ctx, out)             // until ctx ends or q.Stop()
//	q.Push(e1, e2)                     // never blocks
package queue

import (
	"context"
	"sync"
)

// Queue is a FIFO between non-blocking producers and one reader.
type Queue[T any] struct {
	mu      sync.Mutex
	items   []T
	max     int
	wake    chan struct{} // capacity 1
	done    chan struct{}
	stopped bool
}

// New returns a queue holding at most max values waiting (0: no bound).
func New[T any](max int) *Queue[T] {
	return &Queue[T]{max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Push appends vs in order. It reports false, queuing nothing, when the
// queue is stopped or the values would exceed its bound.
func (q *Queue[T]) Push(vs ...T) bool {
	q.mu.Lock()
	if q.stopped || (q.max > 0 && len(q.items)+len(vs) > q.max) {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, vs...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// Stop ends Forward and makes later Pushes fail. It is idempotent.
func (q *Queue[T]) Stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.stopped {
		q.stopped = true
		close(q.done)
	}
}

// Done is closed by Stop.
func (q *Queue[T]) Done() <-chan struct{} { return q.done }

// Forward sends queued values to out in order until ctx ends or Stop is
// called; values still queued then are dropped. It does not close out.
func (q *Queue[T]) Forward(ctx context.Context, out chan<- T) {
	for {
		q.mu.Lock()
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		for _, v := range batch {
			select {
			case out <- v:
			case <-ctx.Done():
				return
			case <-q.done:
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return
		case <-q.done:
			return
		}
	}
}
