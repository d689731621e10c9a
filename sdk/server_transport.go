package sdk

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

const (
	// attachTimeout is how long a handed-over connection waits for the
	// host to attach its data plane before the plugin closes it.
	attachTimeout = 30 * time.Second
	// tokenSize is the size of the secret that binds a data-plane
	// attachment to a connection handed over by a control RPC.
	tokenSize = 32
	// socketHeaderSize is conn id (8 bytes, big endian) + token.
	socketHeaderSize = 8 + tokenSize
	// socketAck is the byte the plugin writes once a socket is attached
	// and relayed: the unix connection carries the bytes from now on.
	socketAck = 0x01
	// socketAckFD is the byte the plugin writes with the transport
	// connection's own file descriptor attached (SCM_RIGHTS): the host
	// uses that descriptor and the unix connection is done.
	socketAckFD = 0x02
	// chunkSize is the largest data chunk of stream mode.
	chunkSize = 256 << 10
)

// transportServer serves a Transport's control RPCs and both data planes.
type transportServer struct {
	wirev1.UnimplementedTransportServer
	impl   Transport
	logger *slog.Logger

	mu        sync.Mutex
	nextID    uint64
	listeners map[uint64]Listener
	owners    map[uint64]uint64 // listener id -> client connection id (transport_owner.go)
	pending   map[uint64]*pendingConn
	active    map[net.Conn]struct{}
	sock      *socketPlane
	closed    bool
}

type pendingConn struct {
	conn  net.Conn
	token [tokenSize]byte
	timer *time.Timer
}

func newTransportServer(t Transport, logger *slog.Logger) *transportServer {
	return &transportServer{
		impl:      t,
		logger:    logger,
		listeners: map[uint64]Listener{},
		owners:    map[uint64]uint64{},
		pending:   map[uint64]*pendingConn{},
		active:    map[net.Conn]struct{}{},
	}
}

func (s *transportServer) Info(context.Context, *wirev1.Empty) (*wirev1.TransportInfo, error) {
	info := &wirev1.TransportInfo{Protocol: s.impl.Protocol()}
	if pt, ok := s.impl.(PacketTransport); ok {
		info.PacketProfile = packetProfileToWire(pt.PacketProfile())
	}
	return info, nil
}

func (s *transportServer) Listen(ctx context.Context, req *wirev1.ListenRequest) (*wirev1.ListenResponse, error) {
	l, err := s.impl.Listen(ctx, req.GetAddr())
	if err != nil {
		return nil, toStatus(fmt.Errorf("listen %s: %w", req.GetAddr(), err))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return nil, status.Error(codes.Unavailable, "transport server is shutting down")
	}
	s.nextID++
	id := s.nextID
	s.listeners[id] = l
	if owner := clientConnID(ctx); owner != 0 {
		s.owners[id] = owner
	}
	s.mu.Unlock()
	return &wirev1.ListenResponse{ListenerId: id, Addr: l.Addr()}, nil
}

func (s *transportServer) listener(id uint64) (Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.listeners[id]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "listener %d: unknown or closed", id)
	}
	return l, nil
}

func (s *transportServer) Accept(ctx context.Context, req *wirev1.AcceptRequest) (*wirev1.ConnResponse, error) {
	l, err := s.listener(req.GetListenerId())
	if err != nil {
		return nil, err
	}
	c, err := l.Accept(ctx)
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, status.Errorf(codes.Aborted, "accept on listener %d: listener closed", req.GetListenerId())
		}
		return nil, toStatus(fmt.Errorf("accept: %w", err))
	}
	return s.handOver(c, req.GetDataPlane())
}

func (s *transportServer) CloseListener(_ context.Context, req *wirev1.ListenerRef) (*wirev1.Empty, error) {
	s.mu.Lock()
	l, ok := s.listeners[req.GetListenerId()]
	delete(s.listeners, req.GetListenerId())
	delete(s.owners, req.GetListenerId())
	s.mu.Unlock()
	if !ok {
		return &wirev1.Empty{}, nil // Close is idempotent
	}
	if err := l.Close(); err != nil {
		return nil, toStatus(fmt.Errorf("close listener: %w", err))
	}
	return &wirev1.Empty{}, nil
}

func (s *transportServer) Dial(ctx context.Context, req *wirev1.DialRequest) (*wirev1.ConnResponse, error) {
	c, err := s.impl.Dial(ctx, req.GetAddr())
	if err != nil {
		return nil, toStatus(fmt.Errorf("dial %s: %w", req.GetAddr(), err))
	}
	return s.handOver(c, req.GetDataPlane())
}

// handOver registers c until the host attaches a data plane to it.
func (s *transportServer) handOver(c net.Conn, plane wirev1.DataPlane) (*wirev1.ConnResponse, error) {
	pc := &pendingConn{conn: c}
	if _, err := rand.Read(pc.token[:]); err != nil {
		_ = c.Close()
		return nil, status.Errorf(codes.Internal, "connection token: %v", err)
	}
	resp := &wirev1.ConnResponse{Token: pc.token[:], LocalAddr: addrString(c.LocalAddr()), RemoteAddr: addrString(c.RemoteAddr())}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, status.Error(codes.Unavailable, "transport server is shutting down")
	}
	switch plane {
	case wirev1.DataPlane_DATA_PLANE_SOCKET:
		if s.sock == nil {
			sp, err := newSocketPlane(s)
			if err != nil {
				_ = c.Close()
				return nil, status.Errorf(codes.Internal, "socket data plane: %v", err)
			}
			s.sock = sp
		}
		resp.SocketPath = s.sock.path
	case wirev1.DataPlane_DATA_PLANE_STREAM:
	default:
		_ = c.Close()
		return nil, status.Errorf(codes.InvalidArgument, "data plane %v: want socket or stream", plane)
	}
	s.nextID++
	id := s.nextID
	resp.ConnId = id
	pc.timer = time.AfterFunc(attachTimeout, func() {
		s.mu.Lock()
		p, ok := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if ok {
			s.logger.Warn("transport connection never attached; closed", "conn", id)
			_ = p.conn.Close()
		}
	})
	s.pending[id] = pc
	return resp, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// claim takes the pending conn id if token matches.
func (s *transportServer) claim(id uint64, token []byte) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc, ok := s.pending[id]
	if !ok || len(token) != tokenSize || subtle.ConstantTimeCompare(pc.token[:], token) != 1 {
		return nil, status.Errorf(codes.PermissionDenied, "connection %d: unknown or bad token", id)
	}
	delete(s.pending, id)
	pc.timer.Stop()
	s.active[pc.conn] = struct{}{}
	return pc.conn, nil
}

func (s *transportServer) release(c net.Conn) {
	s.mu.Lock()
	delete(s.active, c)
	s.mu.Unlock()
	_ = c.Close()
}

// close ends every listener and connection and removes the socket
// directory. The server refuses new work afterwards.
func (s *transportServer) close() {
	s.mu.Lock()
	s.closed = true
	ls := s.listeners
	s.listeners = map[uint64]Listener{}
	var conns []net.Conn
	for _, p := range s.pending {
		p.timer.Stop()
		conns = append(conns, p.conn)
	}
	s.pending = map[uint64]*pendingConn{}
	for c := range s.active {
		conns = append(conns, c)
	}
	sock := s.sock
	s.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if sock != nil {
		sock.close()
	}
}

// Stream is the stream-mode data plane of one connection.
func (s *transportServer) Stream(stream grpc.BidiStreamingServer[wirev1.Chunk, wirev1.Chunk]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	c, err := s.claim(first.GetConnId(), first.GetToken())
	if err != nil {
		return err
	}
	defer s.release(c)

	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		buf := make([]byte, chunkSize)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if serr := stream.Send(&wirev1.Chunk{Data: buf[:n]}); serr != nil {
					_ = c.Close()
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					_ = stream.Send(&wirev1.Chunk{Eof: true})
				}
				return
			}
		}
	}()

	if len(first.GetData()) > 0 {
		if _, err := c.Write(first.GetData()); err != nil {
			_ = c.Close()
		}
	}
	for {
		ch, err := stream.Recv()
		if err != nil {
			// The host went away (or half-closed without close): end it.
			break
		}
		if len(ch.GetData()) > 0 {
			if _, err := c.Write(ch.GetData()); err != nil {
				break
			}
		}
		if ch.GetClose() {
			break
		}
		if ch.GetEof() {
			closeWrite(c)
		}
	}
	_ = c.Close()
	<-sendDone
	return nil
}

// closeWrite half-closes c when it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = c.Close()
}

// socketPlane is the socket-mode data plane: a unix listener in a private
// directory; each host connection names the conn it attaches to.
type socketPlane struct {
	s    *transportServer
	dir  string
	path string
	ln   *net.UnixListener
	wg   sync.WaitGroup
}

func newSocketPlane(s *transportServer) (*socketPlane, error) {
	// Inside the directory the host made for this plugin's sockets when
	// it gave one (go-plugin's host does, and removes it when the process
	// is gone, even after a crash or a kill), else the temp directory.
	base := os.Getenv(plugin.EnvUnixSocketDir)
	if base == "" || len(base) > 60 {
		base = os.TempDir()
	}
	if len(base) > 60 { // sun_path holds ~107 bytes
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "skein-tp-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	path := filepath.Join(dir, "data.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	sp := &socketPlane{s: s, dir: dir, path: path, ln: ln}
	sp.wg.Add(1)
	go sp.serve()
	return sp, nil
}

func (sp *socketPlane) serve() {
	defer sp.wg.Done()
	for {
		c, err := sp.ln.AcceptUnix()
		if err != nil {
			return
		}
		go sp.attach(c)
	}
}

func (sp *socketPlane) attach(u *net.UnixConn) {
	var hdr [socketHeaderSize]byte
	_ = u.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(u, hdr[:]); err != nil {
		_ = u.Close()
		return
	}
	c, err := sp.s.claim(binary.BigEndian.Uint64(hdr[:8]), hdr[8:])
	if err != nil {
		sp.s.logger.Warn("socket data plane: refused attachment", "error", err)
		_ = u.Close()
		return
	}
	defer sp.s.release(c)
	if handOverFD(u, c) {
		_ = u.Close()
		return
	}
	if _, err := u.Write([]byte{socketAck}); err != nil {
		_ = u.Close()
		return
	}
	_ = u.SetDeadline(time.Time{})
	relay(u, c)
}

// handOverFD sends c's own file descriptor to the host when c is a plain
// operating-system socket, so that the bytes then flow between the host
// and the remote end with no copy through this process. It reports
// whether it did; the caller then closes its copy of c.
func handOverFD(u *net.UnixConn, c net.Conn) bool {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	sent := false
	cerr := raw.Control(func(fd uintptr) {
		_, _, err := u.WriteMsgUnix([]byte{socketAckFD}, syscall.UnixRights(int(fd)), nil)
		sent = err == nil
	})
	return cerr == nil && sent
}

func (sp *socketPlane) close() {
	_ = sp.ln.Close()
	sp.wg.Wait()
	_ = os.RemoveAll(sp.dir)
}

// relay copies both ways between the host's unix connection and the
// transport connection, passing half-closes on, until both directions end.
func relay(host *net.UnixConn, c net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		// Through Read and Write only: io.Copy would use a WriterTo or
		// ReaderFrom, which a wrapper type embedding *net.TCPConn
		// inherits from it, and move the bytes past the wrapper's own
		// Read and Write (its framing, its obfuscation) unseen.
		_, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, make([]byte, 32<<10))
		if err != nil {
			// A broken direction ends the connection both ways.
			_ = host.Close()
			_ = c.Close()
		} else {
			closeWrite(dst)
		}
		done <- struct{}{}
	}
	go pipe(c, host)
	go pipe(host, c)
	<-done
	<-done
	_ = host.Close()
	_ = c.Close()
}

// readerOnly and writerOnly hide every method but Read and Write.
type (
	readerOnly struct{ io.Reader }
	writerOnly struct{ io.Writer }
)
