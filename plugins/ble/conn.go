package ble

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Addr is a BLE transport address as a net.Addr.
type Addr string

// Network is the multiaddr protocol name.
func (Addr) Network() string { return Protocol }

func (a Addr) String() string { return string(a) }

// Connection errors.
var (
	// ErrStalled: the peer granted no credit for the stall timeout; the
	// link is cut.
	ErrStalled = errors.New("ble: peer stalled; link cut")
	// ErrLinkLost: the link ended without the peer closing the connection.
	ErrLinkLost = errors.New("ble: link lost")
	// ErrPeerClosed: writing after the peer closed the connection.
	ErrPeerClosed = errors.New("ble: connection closed by the peer")
)

// Connection tuning.
const (
	// maxBuffered bounds the bytes received and not yet read; beyond it
	// the link's flow control holds the peer back.
	maxBuffered = 64 << 10
	// closeTimeout bounds sending the close frame.
	closeTimeout = 2 * time.Second
	// closeLinger is how long a closed connection keeps its link for the
	// peer to take the last frames and close its end.
	closeLinger = 5 * time.Second
	// reorderWindow is how far ahead of the expected frame an unordered
	// link's frames may come.
	reorderWindow = 64
)

// conn is a net.Conn over one Link: writes are cut into data frames of at
// most the link's MTU, a reader goroutine decodes the peer's frames into
// a bounded buffer, and Close sends a close frame and lingers until the
// peer has closed its end (an L2CAP channel drops what it has not sent
// when closed).
type conn struct {
	link    Link
	log     *slog.Logger
	mtu     int
	stall   time.Duration
	onClose func()

	mu        sync.Mutex
	rbuf      bytes.Buffer
	rerr      error // what Read returns once rbuf is empty
	closed    bool  // Close called
	peerGone  bool  // the peer closed or the link ended
	rdeadline time.Time
	wdeadline time.Time
	changed   chan struct{} // closed and replaced at each change

	wmu  sync.Mutex // one Write at a time; guards wseq
	wseq uint16

	readerDone chan struct{}
	closeOnce  sync.Once
}

var _ net.Conn = (*conn)(nil)

func newConn(l Link, log *slog.Logger, stall time.Duration, onClose func()) *conn {
	c := &conn{link: l, log: log.With("peer", l.RemoteDevice()), mtu: l.MTU(), stall: stall, onClose: onClose,
		changed: make(chan struct{}), readerDone: make(chan struct{})}
	go c.readLoop()
	return c
}

// notifyLocked wakes every waiter. Hold mu.
func (c *conn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *conn) readLoop() {
	defer close(c.readerDone)
	var seq sequencer
	var ro *reorderer
	if !c.link.Ordered() {
		ro = newReorderer(reorderWindow)
	}
	fail := func(err error) {
		c.mu.Lock()
		if c.rerr == nil {
			c.rerr = err
		}
		c.peerGone = true
		c.notifyLocked()
		c.mu.Unlock()
		c.closeLink()
	}
	discard := false // closed here: drain until the peer closes its end
	for {
		p, err := c.link.ReadPacket()
		if err != nil {
			c.mu.Lock()
			mine := c.closed
			c.mu.Unlock()
			if !mine && !errors.Is(err, io.EOF) {
				c.log.Debug("ble link ended", "err", err)
			}
			fail(fmt.Errorf("%w: %v", ErrLinkLost, err))
			return
		}
		f, err := decodeFrame(p, c.mtu)
		var ready [][]byte
		switch {
		case err != nil:
		case ro != nil:
			ready, err = ro.push(f, p)
		default:
			err = seq.check(f)
			ready = [][]byte{p}
		}
		if err != nil {
			c.log.Warn("ble peer sent a bad frame; cutting the link", "err", err)
			fail(err)
			return
		}
		for _, p := range ready {
			f, _ := decodeFrame(p, c.mtu)
			if f.kind == frameClose {
				c.mu.Lock()
				if c.rerr == nil {
					c.rerr = io.EOF
				}
				c.peerGone = true
				c.notifyLocked()
				c.mu.Unlock()
				c.closeLink() // the peer lingers until we close our end
				return
			}
			if !discard && !c.deliver(f.payload) {
				discard = true
			}
		}
	}
}

// deliver appends data to the read buffer, waiting while it is full; it
// reports false once the connection is closed.
func (c *conn) deliver(data []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.rbuf.Len() >= maxBuffered && !c.closed {
		ch := c.changed
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	if c.closed {
		return false
	}
	c.rbuf.Write(data)
	c.notifyLocked()
	return true
}

// Read implements net.Conn.
func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed {
			return 0, net.ErrClosed
		}
		if c.rbuf.Len() > 0 {
			if len(b) == 0 {
				return 0, nil
			}
			n, _ := c.rbuf.Read(b)
			c.notifyLocked() // room for the reader goroutine
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		if !c.rdeadline.IsZero() && !time.Now().Before(c.rdeadline) {
			return 0, os.ErrDeadlineExceeded
		}
		ch := c.changed
		var t *time.Timer
		var timer <-chan time.Time
		if !c.rdeadline.IsZero() {
			t = time.NewTimer(time.Until(c.rdeadline))
			timer = t.C
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		c.mu.Lock()
	}
}

// Write implements net.Conn: it returns once every byte is on the link,
// blocking while the peer gives no credit. A peer that gives none for the
// stall timeout is cut off.
func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	payload := c.mtu - frameHeader
	pkt := make([]byte, 0, c.mtu)
	written := 0
	for written < len(b) {
		c.mu.Lock()
		closed, gone, dl := c.closed, c.peerGone, c.wdeadline
		c.mu.Unlock()
		switch {
		case closed:
			return written, net.ErrClosed
		case gone:
			return written, ErrPeerClosed
		case !dl.IsZero() && !time.Now().Before(dl):
			return written, os.ErrDeadlineExceeded
		}
		n := min(len(b)-written, payload)
		pkt = appendFrame(pkt[:0], frameData, c.wseq, b[written:written+n])
		stallAt := time.Now().Add(c.stall)
		until, byStall := dl, false
		if dl.IsZero() || stallAt.Before(dl) {
			until, byStall = stallAt, true
		}
		if err := c.link.WritePacket(pkt, until); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if byStall {
					c.log.Warn("ble peer gave no credit; cutting the link", "stall_timeout", c.stall)
					c.mu.Lock()
					c.peerGone = true
					if c.rerr == nil {
						c.rerr = ErrStalled
					}
					c.notifyLocked()
					c.mu.Unlock()
					c.closeLink()
					return written, ErrStalled
				}
				return written, os.ErrDeadlineExceeded
			}
			c.mu.Lock()
			closed = c.closed
			c.mu.Unlock()
			if closed {
				return written, net.ErrClosed
			}
			return written, fmt.Errorf("%w: %v", ErrLinkLost, err)
		}
		c.wseq++
		written += n
	}
	return written, nil
}

// Close implements net.Conn: it sends the close frame and lets the link
// linger until the peer closes its end (at most closeLinger), in the
// background. Reads and writes end at once.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	gone := c.peerGone
	c.notifyLocked()
	c.mu.Unlock()
	if gone || !c.wmu.TryLock() {
		// The peer is gone, or a Write is blocked on credit: nothing
		// more can go out in order.
		c.closeLink()
		return nil
	}
	err := c.link.WritePacket(appendFrame(nil, frameClose, c.wseq, nil), time.Now().Add(closeTimeout))
	c.wseq++
	c.wmu.Unlock()
	if err != nil {
		c.closeLink()
		return nil
	}
	go func() {
		t := time.NewTimer(closeLinger)
		defer t.Stop()
		select {
		case <-c.readerDone:
		case <-t.C:
		}
		c.closeLink()
	}()
	return nil
}

func (c *conn) closeLink() {
	c.closeOnce.Do(func() {
		_ = c.link.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
}

func (c *conn) LocalAddr() net.Addr  { return Addr(c.link.LocalAddr()) }
func (c *conn) RemoteAddr() net.Addr { return Addr(c.link.RemoteAddr()) }

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdeadline, c.wdeadline = t, t
	c.notifyLocked()
	c.mu.Unlock()
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdeadline = t
	c.notifyLocked()
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.Conn; a Write blocked on credit keeps
// the deadline it started with.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdeadline = t
	c.mu.Unlock()
	return nil
}
