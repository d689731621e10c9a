package simnet

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler runs functions at their times on one goroutine, in time order
// (ties in the order scheduled): every message in flight on every link
// waits here, so the network costs one goroutine, not one per link.
// Functions must not block.
type scheduler struct {
	mu     sync.Mutex
	events eventHeap
	seq    uint64
	wake   chan struct{}
	done   chan struct{}
	closed bool
}

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return e
}

func newScheduler() *scheduler {
	return &scheduler{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// at schedules fn at t; it reports false once the scheduler is closed.
func (s *scheduler) at(t time.Time, fn func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.seq++
	heap.Push(&s.events, event{at: t, seq: s.seq, fn: fn})
	first := s.events[0].seq == s.seq
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// pending returns the number of events waiting.
func (s *scheduler) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *scheduler) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.events = nil
		close(s.done)
	}
}

// run executes events until close.
func (s *scheduler) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []func()
	for {
		s.mu.Lock()
		now := time.Now()
		due = due[:0]
		for len(s.events) > 0 && !s.events[0].at.After(now) && len(due) < 256 {
			due = append(due, heap.Pop(&s.events).(event).fn)
		}
		var wait time.Duration = -1
		if len(due) == 0 && len(s.events) > 0 {
			wait = s.events[0].at.Sub(now)
		}
		s.mu.Unlock()
		if len(due) > 0 {
			for _, fn := range due {
				fn()
			}
			select {
			case <-s.done:
				return
			default:
			}
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-s.wake:
				timer.Stop() // Go 1.23+: no stale tick to drain
			case <-s.done:
				return
			}
			continue
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}
