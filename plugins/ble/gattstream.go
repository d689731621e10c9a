package ble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// The GATT byte stream: a link carried by a characteristic pair (the
// dialler writes without response to one, the listener notifies on the
// other) where a peer refuses L2CAP channels.
//
// GATT values can be lost (BlueZ drops a notification or a write command
// when its queue is full), duplicated by a retransmission, and reordered
// (D-Bus signals), and each is at most ATT MTU - 3 bytes (a few phones
// refuse more than ~182). So the stream adds what L2CAP gives for free:
// every value is one segment
//
//	kind (1) | link (4) | seq (2) | ack (2) | window (1) | payload
//
// (big-endian). link is the dialler's random id of the link: one
// characteristic pair carries every link of a device, and a notification
// reaches every subscribed central, which keeps its own. Data segments
// (kind segMore, segEnd: the last segment of a packet) and segFin carry a
// sequence number; every segment carries the cumulative ack (the next
// sequence expected) and the window (segments beyond it the receiver
// takes). The sender keeps at most gattWindow segments unacknowledged,
// sends them again after a retransmission timeout (doubling, reset by
// progress) or at once after two duplicate acks, and gives up after
// gattMaxRetries timeouts without progress. The receiver puts segments
// back in order within the window, drops duplicates (answering with an
// ack), reassembles packets of at most the stream's MTU and holds at most
// gattRecvBuffer bytes of them unread: its window closes as it fills, and
// a sender facing a closed window probes it. Close sends a sequenced
// segFin and waits (at most closeTimeout) for its ack; a segReset aborts.
// The handshake: segOpen (version, the dialler's largest value, the PSM
// dialled) until segAccept (version, the value size both use) or
// segReset (refused).
//
// On top, the plugin's conn frames its packets as on an L2CAP channel:
// the stream is a reliable, ordered packet link.

const (
	segOpen   byte = 0x41
	segAccept byte = 0x42
	segMore   byte = 0x43
	segEnd    byte = 0x44
	segAck    byte = 0x45
	segFin    byte = 0x46
	segReset  byte = 0x47
	segProbe  byte = 0x48
)

const (
	// gattHeader is a segment's header.
	gattHeader = 10
	// gattVersion is the stream's version, in segOpen and segAccept.
	gattVersion = 1
	// gattMaxValue is the largest GATT value the stream sends (a 512-byte
	// write at ATT MTU 517 was refused in the guest; 182 passed).
	gattMaxValue = 180
	// gattMinValue is the smallest: ATT MTU 23.
	gattMinValue = 20
	// gattWindow bounds the segments unacknowledged, and how far ahead of
	// the next expected one a segment may come.
	gattWindow = 32
	// gattPacketSegments is how many segments one packet may take: the
	// stream's MTU.
	gattPacketSegments = 8
	// gattMaxPacket caps the MTU.
	gattMaxPacket = 1024
	// gattRecvBuffer bounds the bytes of packets received and not read.
	gattRecvBuffer = 64 << 10
	// gattAckEvery acknowledges at once after this many segments in order;
	// fewer wait gattAckDelay.
	gattAckEvery = 4
	gattAckDelay = 20 * time.Millisecond
	// Retransmission timeout: from gattRTOMin (or twice the smoothed round
	// trip), doubling to gattRTOMax at each timeout without progress.
	gattRTOMin     = 250 * time.Millisecond
	gattRTOMax     = 4 * time.Second
	gattMaxRetries = 10
)

// GATT stream errors.
var (
	ErrSegment     = errors.New("ble: bad GATT segment")
	ErrGATTRefused = errors.New("ble: GATT stream refused by the peer")
	ErrGATTNoAck   = errors.New("ble: GATT stream: peer acknowledges nothing")
)

// segment is one decoded GATT value; payload aliases it.
type segment struct {
	kind    byte
	link    uint32
	seq     uint16
	ack     uint16
	window  uint8
	payload []byte
}

func appendSegment(b []byte, s segment) []byte {
	b = append(b, s.kind)
	b = binary.BigEndian.AppendUint32(b, s.link)
	b = binary.BigEndian.AppendUint16(b, s.seq)
	b = binary.BigEndian.AppendUint16(b, s.ack)
	b = append(b, s.window)
	return append(b, s.payload...)
}

// decodeSegment decodes one GATT value of at most maxValue bytes.
func decodeSegment(p []byte, maxValue int) (segment, error) {
	if len(p) > maxValue {
		return segment{}, fmt.Errorf("%w: %d bytes, at most %d", ErrSegment, len(p), maxValue)
	}
	if len(p) < gattHeader {
		return segment{}, fmt.Errorf("%w: %d bytes, header %d", ErrSegment, len(p), gattHeader)
	}
	s := segment{kind: p[0], link: binary.BigEndian.Uint32(p[1:5]), seq: binary.BigEndian.Uint16(p[5:7]),
		ack: binary.BigEndian.Uint16(p[7:9]), window: p[9], payload: p[gattHeader:]}
	switch s.kind {
	case segOpen:
		if len(s.payload) != 5 {
			return segment{}, fmt.Errorf("%w: open of %d bytes", ErrSegment, len(s.payload))
		}
	case segAccept:
		if len(s.payload) != 3 {
			return segment{}, fmt.Errorf("%w: accept of %d bytes", ErrSegment, len(s.payload))
		}
	case segMore:
		if len(s.payload) == 0 {
			return segment{}, fmt.Errorf("%w: empty data segment", ErrSegment)
		}
	case segEnd:
	case segAck, segFin, segReset, segProbe:
		if len(s.payload) != 0 {
			return segment{}, fmt.Errorf("%w: kind %#x with payload", ErrSegment, s.kind)
		}
	default:
		return segment{}, fmt.Errorf("%w: kind %#x", ErrSegment, s.kind)
	}
	if s.window > gattWindow {
		return segment{}, fmt.Errorf("%w: window %d", ErrSegment, s.window)
	}
	return s, nil
}

// openPayload is segOpen's payload: version, largest value, PSM.
func openPayload(maxValue int, psm uint16) []byte {
	b := []byte{gattVersion}
	b = binary.BigEndian.AppendUint16(b, uint16(maxValue))
	return binary.BigEndian.AppendUint16(b, psm)
}

func parseOpen(s segment) (maxValue int, psm uint16, err error) {
	if s.payload[0] != gattVersion {
		return 0, 0, fmt.Errorf("%w: version %d", ErrSegment, s.payload[0])
	}
	maxValue = int(binary.BigEndian.Uint16(s.payload[1:3]))
	if maxValue < gattMinValue {
		return 0, 0, fmt.Errorf("%w: value size %d", ErrSegment, maxValue)
	}
	return min(maxValue, gattMaxValue), binary.BigEndian.Uint16(s.payload[3:5]), nil
}

// gattMTU is the packet size of a stream whose values are at most
// maxValue bytes.
func gattMTU(maxValue int) int {
	return min(gattMaxPacket, gattPacketSegments*(maxValue-gattHeader))
}

// gattOut is one sequenced segment sent and not yet acknowledged.
type gattOut struct {
	kind    byte
	seq     uint16
	payload []byte
	sent    bool
	resent  bool
	sentAt  time.Time
}

// gattStream is one link over a GATT byte stream; it implements Link.
// The owner feeds it every value received for its link (input) and
// gives it a send function for values the other way; both may block.
type gattStream struct {
	id                    uint32
	send                  func([]byte) error
	onClose               func()
	log                   *slog.Logger
	local, remote, remDev string
	pipe                  Link // what carries the values, if a Link (gattOverLink)

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at each change
	kick     chan struct{} // wakes the sender
	value    int           // largest value both sides take
	opened   bool
	acceptor bool
	accept   bool // send segAccept again (the dialler's open came again)

	// tuning (the constants; tests shorten them)
	rtoMin, rtoMax time.Duration
	maxRetries     int

	// sending
	sndUna, sndNxt uint16
	unacked        []*gattOut
	peerWnd        int
	srtt, rto      time.Duration
	rtoAt          time.Time
	retries        int
	dupAcks        int
	writers        int // WritePackets waiting for the window
	probeAt        time.Time
	finQueued      bool

	// receiving
	rcvNxt     uint16
	ooo        map[uint16]segment // payloads copied
	partial    []byte
	ready      [][]byte
	readyBytes int
	finIn      bool
	ackDue     bool
	ackAt      time.Time
	inOrder    int // segments in order since the last ack
	lastWnd    int // window last advertised

	err    error // the stream failed (reset, protocol, no ack)
	closed bool  // Close called
	done   chan struct{}
	once   sync.Once
}

var _ Link = (*gattStream)(nil)

func newGATTStream(id uint32, value int, send func([]byte) error, log *slog.Logger, local, remote, remDev string) *gattStream {
	s := &gattStream{id: id, value: value, send: send, log: log, local: local, remote: remote, remDev: remDev,
		changed: make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{}),
		rto: gattRTOMin, rtoMin: gattRTOMin, rtoMax: gattRTOMax, maxRetries: gattMaxRetries, peerWnd: gattWindow, lastWnd: gattWindow, ooo: map[uint16]segment{}}
	go s.sender()
	return s
}

// dialGATT opens a stream over a pipe: segOpen until segAccept, segReset
// or ctx ends. The caller feeds the stream's input from then on.
func dialGATT(ctx context.Context, s *gattStream, psm uint16) error {
	open := appendSegment(nil, segment{kind: segOpen, link: s.id, payload: openPayload(s.value, psm)})
	wait := gattRTOMin
	for {
		if err := s.send(open); err != nil {
			return fmt.Errorf("gatt open: %w", err)
		}
		deadline := time.Now().Add(wait)
		s.mu.Lock()
		for !s.opened && s.err == nil && !s.closed && ctx.Err() == nil && time.Now().Before(deadline) {
			ch := s.changed
			s.mu.Unlock()
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			s.mu.Lock()
		}
		opened, err, closed := s.opened, s.err, s.closed
		s.mu.Unlock()
		switch {
		case opened:
			return nil
		case err != nil:
			return err
		case closed:
			return ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		}
		wait = min(2*wait, gattRTOMax)
	}
}

// acceptGATT makes the listener's stream of a segOpen.
func acceptGATT(open segment, ownValue int, send func([]byte) error, log *slog.Logger, local, remote, remDev string) (*gattStream, uint16, error) {
	value, psm, err := parseOpen(open)
	if err != nil {
		return nil, 0, err
	}
	s := newGATTStream(open.link, min(value, ownValue), send, log, local, remote, remDev)
	s.mu.Lock()
	s.opened, s.acceptor, s.accept = true, true, true
	s.mu.Unlock()
	s.wake()
	return s, psm, nil
}

// resetSegment is what answers a segment of an unknown or refused link.
func resetSegment(link uint32) []byte {
	return appendSegment(nil, segment{kind: segReset, link: link})
}

func (s *gattStream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *gattStream) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// failLocked ends the stream with err (the first one stays).
func (s *gattStream) failLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	s.notifyLocked()
}

// window is how many segments beyond rcvNxt this side takes.
func (s *gattStream) windowLocked() int {
	free := gattRecvBuffer - s.readyBytes - len(s.partial)
	return max(0, min(gattWindow, free/(s.value-gattHeader)))
}

// input takes one value received for this link. A value that breaks the
// protocol fails the stream (and answers segReset).
func (s *gattStream) input(p []byte) {
	seg, err := decodeSegment(p, gattMaxValue)
	if err == nil && seg.link != s.id {
		return // another central's link: notifications reach them all
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closedDone() {
		return
	}
	if err == nil {
		err = s.inputLocked(seg)
	}
	if err != nil {
		s.log.Warn("ble peer sent a bad GATT segment; cutting the link", "err", err)
		s.failLocked(err)
		go func() { _ = s.send(resetSegment(s.id)) }()
	}
	s.wake()
}

func (s *gattStream) closedDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *gattStream) inputLocked(seg segment) error {
	switch seg.kind {
	case segOpen:
		if s.acceptor {
			s.accept = true
		}
		return nil
	case segAccept:
		if s.acceptor {
			return fmt.Errorf("%w: accept sent to the listener", ErrSegment)
		}
		if !s.opened {
			if seg.payload[0] != gattVersion {
				return fmt.Errorf("%w: version %d", ErrSegment, seg.payload[0])
			}
			v := int(binary.BigEndian.Uint16(seg.payload[1:3]))
			if v < gattMinValue || v > s.value {
				return fmt.Errorf("%w: accepted value size %d (offered %d)", ErrSegment, v, s.value)
			}
			s.value, s.opened = v, true
			s.notifyLocked()
		}
		return nil
	case segReset:
		if !s.opened {
			s.failLocked(ErrGATTRefused)
		} else {
			s.failLocked(fmt.Errorf("%w: the peer reset the GATT stream", ErrLinkLost))
		}
		return nil
	}
	if !s.opened {
		return nil // overtook the accept: sent again later
	}
	if len(seg.payload) > s.value-gattHeader {
		return fmt.Errorf("%w: %d bytes of payload, values of %d", ErrSegment, len(seg.payload), s.value)
	}
	if err := s.ackedLocked(seg); err != nil {
		return err
	}
	switch seg.kind {
	case segProbe:
		s.ackDue, s.ackAt = true, time.Time{}
	case segMore, segEnd, segFin:
		return s.sequencedLocked(seg)
	}
	return nil
}

// ackedLocked applies the ack and window a segment carries.
func (s *gattStream) ackedLocked(seg segment) error {
	d := int16(seg.ack - s.sndUna)
	if d < 0 {
		return nil // an older ack overtaken by a newer one
	}
	n := int(d)
	if n > len(s.unacked) {
		return fmt.Errorf("%w: ack %d of segments not sent (next %d)", ErrSegment, seg.ack, s.sndNxt)
	}
	now := time.Now()
	if n > 0 {
		for _, o := range s.unacked[:n] {
			if o.sent && !o.resent {
				rtt := now.Sub(o.sentAt)
				if s.srtt == 0 {
					s.srtt = rtt
				} else {
					s.srtt = (7*s.srtt + rtt) / 8
				}
			}
		}
		s.unacked = s.unacked[n:]
		s.sndUna = seg.ack
		s.retries, s.dupAcks = 0, 0
		s.rto = min(max(s.rtoMin, 2*s.srtt), s.rtoMax)
		s.rtoAt = time.Time{}
		if len(s.unacked) > 0 {
			s.rtoAt = now.Add(s.rto)
		}
	} else if seg.kind == segAck && len(s.unacked) > 0 {
		if s.dupAcks++; s.dupAcks == 2 && s.unacked[0].sent {
			s.unacked[0].sent, s.unacked[0].resent = false, true // fast retransmit
		}
	}
	s.peerWnd = int(seg.window)
	s.notifyLocked()
	return nil
}

func (s *gattStream) sequencedLocked(seg segment) error {
	ahead := int16(seg.seq - s.rcvNxt)
	switch {
	case ahead < 0:
		s.ackDue, s.ackAt = true, time.Time{} // a duplicate: our ack was lost
		return nil
	case int(ahead) >= gattWindow:
		return fmt.Errorf("%w: sequence %d, expecting %d (window %d)", ErrSegment, seg.seq, s.rcvNxt, gattWindow)
	case s.finIn:
		return fmt.Errorf("%w: sequence %d after the peer's end", ErrSegment, seg.seq)
	case ahead > 0:
		if _, ok := s.ooo[seg.seq]; !ok {
			seg.payload = append([]byte(nil), seg.payload...)
			s.ooo[seg.seq] = seg
		}
		s.ackDue, s.ackAt = true, time.Time{} // a gap: tell the sender at once
		return nil
	}
	for {
		if err := s.consumeLocked(seg); err != nil {
			return err
		}
		next, ok := s.ooo[s.rcvNxt]
		if !ok {
			break
		}
		delete(s.ooo, s.rcvNxt)
		seg = next
	}
	if s.inOrder >= gattAckEvery || s.finIn {
		s.ackDue, s.ackAt = true, time.Time{}
	} else if !s.ackDue {
		s.ackDue, s.ackAt = true, time.Now().Add(gattAckDelay)
	}
	return nil
}

func (s *gattStream) consumeLocked(seg segment) error {
	switch seg.kind {
	case segFin:
		if len(s.partial) > 0 {
			return fmt.Errorf("%w: end of stream inside a packet", ErrSegment)
		}
		s.finIn = true
	case segMore, segEnd:
		if len(s.partial)+len(seg.payload) > gattMTU(s.value) {
			return fmt.Errorf("%w: packet over %d bytes", ErrSegment, gattMTU(s.value))
		}
		if s.readyBytes+len(s.partial)+len(seg.payload) > gattRecvBuffer+gattWindow*gattMaxValue {
			return fmt.Errorf("%w: the peer sent past the window (%d bytes unread)", ErrSegment, s.readyBytes)
		}
		s.partial = append(s.partial, seg.payload...)
		if seg.kind == segEnd {
			if len(s.partial) == 0 {
				return fmt.Errorf("%w: empty packet", ErrSegment)
			}
			s.ready = append(s.ready, s.partial)
			s.readyBytes += len(s.partial)
			s.partial = nil
		}
	}
	s.rcvNxt++
	s.inOrder++
	s.notifyLocked()
	return nil
}

// sender sends what is queued, acks, probes and retransmissions, until
// the stream is done.
func (s *gattStream) sender() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		out, next := s.dueLocked(time.Now())
		s.mu.Unlock()
		for _, p := range out {
			if err := s.send(p); err != nil {
				s.mu.Lock()
				s.failLocked(fmt.Errorf("%w: %v", ErrLinkLost, err))
				s.mu.Unlock()
				break
			}
		}
		if !next.IsZero() {
			t.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// dueLocked collects the values to send now and when to look again.
func (s *gattStream) dueLocked(now time.Time) (out [][]byte, next time.Time) {
	if s.err != nil {
		return nil, time.Time{}
	}
	later := func(at time.Time) {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if s.accept {
		s.accept = false
		pl := binary.BigEndian.AppendUint16([]byte{gattVersion}, uint16(s.value))
		out = append(out, appendSegment(nil, segment{kind: segAccept, link: s.id, payload: pl}))
	}
	if !s.opened {
		return out, next
	}
	if !s.rtoAt.IsZero() && !now.Before(s.rtoAt) && len(s.unacked) > 0 {
		if s.retries++; s.retries > s.maxRetries {
			s.failLocked(fmt.Errorf("%w: %w after %d retransmissions", ErrLinkLost, ErrGATTNoAck, s.maxRetries))
			return nil, time.Time{}
		}
		s.rto = min(2*s.rto, s.rtoMax)
		for _, o := range s.unacked {
			if o.sent {
				o.sent, o.resent = false, true
			}
		}
		s.rtoAt = time.Time{}
	}
	wnd := s.windowLocked()
	hdr := func(kind byte, seq uint16, payload []byte) []byte {
		return appendSegment(make([]byte, 0, gattHeader+len(payload)), segment{kind: kind, link: s.id, seq: seq, ack: s.rcvNxt, window: uint8(wnd), payload: payload})
	}
	for _, o := range s.unacked {
		if !o.sent {
			out = append(out, hdr(o.kind, o.seq, o.payload))
			o.sent, o.sentAt = true, now
			s.ackDue, s.inOrder, s.lastWnd = false, 0, wnd
		}
	}
	if len(s.unacked) > 0 && s.rtoAt.IsZero() {
		s.rtoAt = now.Add(s.rto)
	}
	later(s.rtoAt)
	// A writer facing a closed window probes it (the update may be lost).
	if s.writers > 0 && len(s.unacked) == 0 {
		if s.probeAt.IsZero() {
			s.probeAt = now.Add(s.rto)
		} else if !now.Before(s.probeAt) {
			out = append(out, hdr(segProbe, 0, nil))
			s.probeAt = now.Add(s.rto)
		}
		later(s.probeAt)
	} else {
		s.probeAt = time.Time{}
	}
	if s.ackDue {
		if now.Before(s.ackAt) {
			later(s.ackAt)
		} else {
			out = append(out, hdr(segAck, 0, nil))
			s.ackDue, s.inOrder, s.lastWnd = false, 0, wnd
		}
	}
	return out, next
}

// ReadPacket returns the next packet; io.EOF after the peer's end.
func (s *gattStream) ReadPacket() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if len(s.ready) > 0 {
			p := s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			s.readyBytes -= len(p)
			// Open a window that had (nearly) closed at once.
			if s.lastWnd < gattWindow/4 && s.windowLocked() >= gattWindow/2 {
				s.ackDue, s.ackAt = true, time.Time{}
				s.wake()
			}
			return p, nil
		}
		switch {
		case s.closed:
			return nil, ErrClosed
		case s.finIn:
			return nil, io.EOF
		case s.err != nil:
			return nil, s.err
		}
		ch := s.changed
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
}

// WritePacket queues one packet's segments once the window has room for
// all of them (a packet is never half sent), and returns; a non-zero
// deadline bounds the wait.
func (s *gattStream) WritePacket(p []byte, deadline time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mtu := gattMTU(s.value)
	if len(p) == 0 || len(p) > mtu {
		return fmt.Errorf("gatt write: %d bytes, MTU %d", len(p), mtu)
	}
	per := s.value - gattHeader
	n := (len(p) + per - 1) / per
	var timer <-chan time.Time
	for {
		switch {
		case s.closed || s.finQueued:
			return ErrClosed
		case s.err != nil:
			return s.err
		}
		inFlight := int(s.sndNxt - s.sndUna)
		if inFlight+n <= min(s.peerWnd, gattWindow) {
			break
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return os.ErrDeadlineExceeded
		}
		if timer == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timer = t.C
		}
		ch := s.changed
		s.writers++
		s.wake()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer:
		}
		s.mu.Lock()
		s.writers--
	}
	for i := range n {
		kind := segMore
		if i == n-1 {
			kind = segEnd
		}
		chunk := p[i*per : min(len(p), (i+1)*per)]
		s.unacked = append(s.unacked, &gattOut{kind: kind, seq: s.sndNxt, payload: append([]byte(nil), chunk...)})
		s.sndNxt++
	}
	s.wake()
	return nil
}

func (s *gattStream) MTU() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return gattMTU(s.value)
}

func (s *gattStream) Ordered() bool        { return true }
func (s *gattStream) LocalAddr() string    { return s.local }
func (s *gattStream) RemoteAddr() string   { return s.remote }
func (s *gattStream) RemoteDevice() string { return s.remDev }

// Close sends the end of the stream and waits (at most closeTimeout) for
// the peer to acknowledge everything; then the stream is done.
func (s *gattStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	s.notifyLocked()
	if s.err == nil && s.opened && !s.finQueued {
		s.finQueued = true
		s.unacked = append(s.unacked, &gattOut{kind: segFin, seq: s.sndNxt})
		s.sndNxt++
		s.wake()
		deadline := time.Now().Add(closeTimeout)
		for len(s.unacked) > 0 && s.err == nil && time.Now().Before(deadline) {
			ch := s.changed
			s.mu.Unlock()
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-ch:
			case <-t.C:
			}
			t.Stop()
			s.mu.Lock()
		}
	}
	s.mu.Unlock()
	s.finish()
	return nil
}

// finish stops the stream without a word to the peer.
func (s *gattStream) finish() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.failLocked(ErrClosed)
		s.mu.Unlock()
		if s.onClose != nil {
			s.onClose()
		}
	})
}

// abort ends the stream with err (the pipe under it broke).
func (s *gattStream) abort(err error) {
	s.mu.Lock()
	s.failLocked(err)
	s.mu.Unlock()
}

// gattOverLink runs s over a packet link that may lose, repeat or reorder
// (the sim's GATT link; the sockets BlueZ hands out for a remote
// characteristic): a reader feeds the stream, and the stream's end closes
// the link.
func gattOverLink(l Link, s *gattStream) {
	s.pipe = l
	s.onClose = func() { _ = l.Close() }
	go func() {
		for {
			p, err := l.ReadPacket()
			if err != nil {
				s.abort(fmt.Errorf("%w: %v", ErrLinkLost, err))
				return
			}
			s.input(p)
		}
	}()
}

// dialGATTOverLink opens a stream to the listener at psm over l.
func dialGATTOverLink(ctx context.Context, l Link, psm uint16, log *slog.Logger) (Link, error) {
	s := newGATTStream(rand.Uint32(), min(l.MTU(), gattMaxValue), func(p []byte) error { return l.WritePacket(p, time.Time{}) },
		log, l.LocalAddr(), l.RemoteAddr(), l.RemoteDevice())
	gattOverLink(l, s)
	if err := dialGATT(ctx, s, psm); err != nil {
		s.finish()
		return nil, err
	}
	return s, nil
}

// acceptGATTOverLink waits for the dialler's segOpen on l (a link of its
// own) and answers it.
func acceptGATTOverLink(ctx context.Context, l Link, log *slog.Logger) (Link, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	first := make(chan []byte, 1)
	go func() {
		p, err := l.ReadPacket()
		if err != nil {
			p = nil
		}
		first <- p
	}()
	var p []byte
	select {
	case p = <-first:
	case <-ctx.Done():
		_ = l.Close()
		return nil, fmt.Errorf("gatt accept: no open: %w", ctx.Err())
	}
	open, err := decodeSegment(p, gattMaxValue)
	if err == nil && open.kind != segOpen {
		err = fmt.Errorf("%w: kind %#x before open", ErrSegment, open.kind)
	}
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("gatt accept: %w", err)
	}
	s, _, err := acceptGATT(open, min(l.MTU(), gattMaxValue), func(p []byte) error { return l.WritePacket(p, time.Time{}) },
		log, l.LocalAddr(), l.RemoteAddr(), l.RemoteDevice())
	if err != nil {
		_ = l.WritePacket(resetSegment(open.link), time.Now().Add(time.Second))
		_ = l.Close()
		return nil, fmt.Errorf("gatt accept: %w", err)
	}
	gattOverLink(l, s)
	return s, nil
}
