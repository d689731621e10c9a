package ipfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// DirectService is the libp2p resource manager service every stream of a
// direct request protocol (sdk.DirectMessenger) is attached to: its
// memory is bounded by direct_memory overall and direct_memory_per_peer
// per peer, and each direct protocol's inbound streams by direct_streams
// overall and direct_streams_per_peer per peer.
const DirectService = "skein.direct"

// directProtocols is the set of protocols used with HandleRequests or
// Request: the limiter gives them the direct limits. A protocol joins it
// before its first stream, so the resource manager's protocol scope is
// created with them.
type directProtocols struct {
	mu sync.RWMutex
	m  map[protocol.ID]bool
}

func newDirectProtocols() *directProtocols { return &directProtocols{m: map[protocol.ID]bool{}} }

func (d *directProtocols) add(p protocol.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[p] = true
}

func (d *directProtocols) has(p protocol.ID) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.m[p]
}

// limiter is libp2p's autoscaled default limiter (its system memory set
// by resource_memory when non-zero) with the direct limits for the
// service DirectService and the direct protocols.
type limiter struct {
	rcmgr.Limiter
	direct                                    *directProtocols
	service, servicePeer, protocol, protoPeer rcmgr.BaseLimit
}

var _ rcmgr.Limiter = (*limiter)(nil)

func newLimiter(cfg Config, direct *directProtocols) *limiter {
	limits := rcmgr.DefaultLimits.AutoScale()
	if cfg.ResourceMemory > 0 {
		limits = rcmgr.PartialLimitConfig{
			System: rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(cfg.ResourceMemory)},
		}.Build(limits)
	}
	base := rcmgr.NewFixedLimiter(limits)
	d := cfg.Direct
	const anyProtocol = protocol.ID("/skein/limits/any") // not a real one: its limits are the defaults
	return &limiter{
		Limiter:     base,
		direct:      direct,
		service:     withInbound(base.GetServiceLimits(DirectService), 4*d.Streams, d.Memory),
		servicePeer: withInbound(base.GetServicePeerLimits(DirectService), 4*d.StreamsPerPeer, d.MemoryPerPeer),
		protocol:    withInbound(base.GetProtocolLimits(anyProtocol), d.Streams, d.Memory),
		protoPeer:   withInbound(base.GetProtocolPeerLimits(anyProtocol), d.StreamsPerPeer, d.MemoryPerPeer),
	}
}

// withInbound is l with its inbound streams and memory replaced.
func withInbound(l rcmgr.Limit, inbound int, memory int64) rcmgr.BaseLimit {
	return rcmgr.BaseLimit{
		Streams:         max(l.GetStreamTotalLimit(), inbound),
		StreamsInbound:  inbound,
		StreamsOutbound: l.GetStreamLimit(network.DirOutbound),
		Conns:           l.GetConnTotalLimit(),
		ConnsInbound:    l.GetConnLimit(network.DirInbound),
		ConnsOutbound:   l.GetConnLimit(network.DirOutbound),
		FD:              l.GetFDLimit(),
		Memory:          memory,
	}
}

func (l *limiter) GetServiceLimits(svc string) rcmgr.Limit {
	if svc == DirectService {
		return l.service
	}
	return l.Limiter.GetServiceLimits(svc)
}

func (l *limiter) GetServicePeerLimits(svc string) rcmgr.Limit {
	if svc == DirectService {
		return l.servicePeer
	}
	return l.Limiter.GetServicePeerLimits(svc)
}

func (l *limiter) GetProtocolLimits(p protocol.ID) rcmgr.Limit {
	if l.direct.has(p) {
		return l.protocol
	}
	return l.Limiter.GetProtocolLimits(p)
}

func (l *limiter) GetProtocolPeerLimits(p protocol.ID) rcmgr.Limit {
	if l.direct.has(p) {
		return l.protoPeer
	}
	return l.Limiter.GetProtocolPeerLimits(p)
}

// frameGrowth is the first buffer a frame gets; it doubles as bytes
// arrive, so a frame never holds more than twice what was received.
const frameGrowth = 16 << 10

// ErrStalled is returned when a peer stops sending in the middle of a
// frame for longer than direct_idle_timeout.
var ErrStalled = errors.New("network.ipfs: peer stalled in the middle of a frame")

// frameReader reads one length-prefixed frame from a stream, reserving
// the memory of its buffer in the stream's resource scope as the bytes
// arrive (never for the length the peer claims), and failing when no byte
// arrives for idle or the deadline passes.
type frameReader struct {
	s        network.Stream
	idle     time.Duration
	deadline time.Time
	reserved int
}

// Read implements io.Reader with the idle timeout refreshed before every
// read.
func (f *frameReader) Read(b []byte) (int, error) {
	dl := time.Now().Add(f.idle)
	if !f.deadline.IsZero() && f.deadline.Before(dl) {
		dl = f.deadline
	}
	_ = f.s.SetReadDeadline(dl)
	n, err := f.s.Read(b)
	var te interface{ Timeout() bool }
	if err != nil && errors.As(err, &te) && te.Timeout() && (f.deadline.IsZero() || time.Now().Before(f.deadline)) {
		return n, fmt.Errorf("%w: no byte for %s", ErrStalled, f.idle)
	}
	return n, err
}

// reserve accounts n more bytes to the stream's scope.
func (f *frameReader) reserve(n int) error {
	if err := f.s.Scope().ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
		return fmt.Errorf("frame buffer: %w", err)
	}
	f.reserved += n
	return nil
}

// release gives back everything reserved, once the frame is no longer
// used (the stream's scope gives it back anyway when the stream ends).
func (f *frameReader) release() {
	if f.reserved > 0 {
		f.s.Scope().ReleaseMemory(f.reserved)
		f.reserved = 0
	}
}

// read reads one frame of at most MaxDirectMessage bytes.
func (f *frameReader) read() ([]byte, error) { return readFrame(f, f.reserve) }

// readFrame reads one length-prefixed frame of at most MaxDirectMessage
// bytes from r. Its buffer starts at frameGrowth bytes and doubles as the
// bytes arrive, reserve accounting each growth first: what a frame costs
// follows what the peer sent, not the length it claimed.
func readFrame(r io.Reader, reserve func(int) error) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64)
	size, err := readUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("read length: %w", err)
	}
	if size > MaxDirectMessage {
		return nil, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, size)
	}
	want := int(size)
	buf := make([]byte, 0, min(want, frameGrowth))
	if err := reserve(cap(buf)); err != nil {
		return nil, err
	}
	for len(buf) < want {
		if len(buf) == cap(buf) {
			grown := min(want, 2*cap(buf))
			if err := reserve(grown - cap(buf)); err != nil {
				return nil, err
			}
			next := make([]byte, len(buf), grown)
			copy(next, buf)
			buf = next
		}
		k, err := br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < want {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read body (%d of %d bytes): %w", len(buf), want, err)
		}
	}
	return buf, nil
}

// readUvarint is binary.ReadUvarint with io.EOF after a partial prefix
// reported as io.ErrUnexpectedEOF.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < 10; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return x, err
		}
		if b < 0x80 {
			if i == 9 && b > 1 {
				return x, errors.New("length overflows 64 bits")
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return x, errors.New("length overflows 64 bits")
}

// directStat is what the resource manager accounts to the direct
// protocols now, all peers together.
func directStat(rm network.ResourceManager) network.ScopeStat {
	var st network.ScopeStat
	_ = rm.ViewService(DirectService, func(s network.ServiceScope) error {
		st = s.Stat()
		return nil
	})
	return st
}
