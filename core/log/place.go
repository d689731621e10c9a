package log

import (
	"context"
	"time"
)

// Placement: a write (flush) puts each new entry's block into the KV, in
// the batch that holds its index, so that one synced write makes the
// entry durable; the BlockStore (the network's blockstore, where peers
// fetch blocks) gets the block afterwards, from the placer, and until then
// the log serves it from memory. Once the BlockStore holds a block its KV
// copy is deleted with the next write. A process that stops before a
// block is placed leaves its KV copy, and the next Open places it again:
// an entry in the index always has its block in the KV or the BlockStore.
//
// For a network out of process this takes a cross-process call and the
// network's own synced write off every append's path (issue 12: one fsync
// per send), and concurrent writes share both.

// closeTimeout bounds what Close still writes: the last placement and the
// deletion of placed blocks' KV copies.
const closeTimeout = 5 * time.Second

// placeDelay is how long written blocks wait to be placed, so that the
// writes of that time go in one put: one sender acknowledged 15-19% more
// sends a second with it than with a put per write (skein bench a, the
// BlockStore's fsyncs no longer interleaved with the KV's). A peer that
// fetches such a block from the BlockStore meanwhile gets it that much
// later; the log serves it from memory.
const placeDelay = 5 * time.Millisecond

// Retry delays of a failed placement (a network restarting, say).
const (
	placeRetryMin = 10 * time.Millisecond
	placeRetryMax = 2 * time.Second
)

// placer puts written entries' blocks into the BlockStore, one batch at a
// time: entries written while a batch is being put go in the next one.
type placer struct {
	wakeCh chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *placer) start(l *Log) {
	p.wakeCh = make(chan struct{}, 1)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.done = make(chan struct{})
	go p.run(l)
	p.wake()
}

// wake tells the placer there is something to place.
func (p *placer) wake() {
	select {
	case p.wakeCh <- struct{}{}:
	default:
	}
}

// stop places what is queued once more and stops the placer.
func (p *placer) stop() {
	if p.done == nil {
		return
	}
	p.cancel()
	<-p.done
}

func (p *placer) run(l *Log) {
	defer close(p.done)
	delay := time.Duration(0)
	for {
		stopping := false
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				stopping = true
			}
			t.Stop()
		} else {
			select {
			case <-p.wakeCh:
			case <-p.ctx.Done():
				stopping = true
			}
		}
		if !stopping {
			// Let a few writes gather: fewer, larger puts (and
			// fewer fsyncs in the BlockStore competing for the disk
			// with the KV's, which acknowledge sends).
			t := time.NewTimer(placeDelay)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				stopping = true
			}
			t.Stop()
		}
		err := l.placeQueued(stopping)
		if stopping {
			return
		}
		if err != nil {
			delay = min(max(2*delay, placeRetryMin), placeRetryMax)
			l.logger.Warn("put written entries' blocks into the block store; kept in the kv, retried", "err", err)
			continue
		}
		delay = 0
	}
}

// placeQueued puts the queued entries' blocks into the BlockStore; on
// success their KV copies are to be deleted and the log stops holding
// them in memory. On failure they stay queued. last: the log is closing,
// bound the attempt by closeTimeout.
func (l *Log) placeQueued(last bool) error {
	l.mu.Lock()
	batch := l.toPlace
	l.toPlace = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ctx := context.Background()
	if last {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, closeTimeout)
		defer cancel()
	}
	err := l.putBlocks(ctx, batch)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.toPlace = append(batch, l.toPlace...)
		return err
	}
	for _, e := range batch {
		delete(l.unsynced, e.cid.KeyString())
		l.placed = append(l.placed, l.cidKey(tagBlock, e.cid))
	}
	l.shrinkUnsynced()
	return nil
}

// syncPlacement waits until every written entry's block is in the
// BlockStore (tests).
func (l *Log) syncPlacement() error {
	for {
		if err := l.placeQueued(false); err != nil {
			return err
		}
		l.mu.Lock()
		n := len(l.toPlace)
		l.mu.Unlock()
		if n == 0 {
			return nil
		}
	}
}
