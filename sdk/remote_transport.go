package sdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// NetAddr is the net.Addr of a transport connection: the transport's
// protocol (e.g. "x-ble") and its transport-specific address string.
type NetAddr struct {
	Protocol string
	Address  string
}

// Network returns the transport protocol.
func (a NetAddr) Network() string { return a.Protocol }

// String returns the transport address.
func (a NetAddr) String() string { return a.Address }

// remoteTransport is a Transport in a plugin process.
type remoteTransport struct {
	c        *grpcClient
	tc       wirev1.TransportClient
	protocol string
	plane    wirev1.DataPlane // UNSPECIFIED: no common data plane
}

var _ Transport = (*remoteTransport)(nil)

// remotePacketTransport adds the PacketTransport capability.
type remotePacketTransport struct {
	*remoteTransport
	profile PacketProfile
}

var _ PacketTransport = (*remotePacketTransport)(nil)

func (t *remotePacketTransport) PacketProfile() PacketProfile { return t.profile }

func (t *remoteTransport) Protocol() string { return t.protocol }

func (t *remoteTransport) checkPlane() error {
	if t.plane == wirev1.DataPlane_DATA_PLANE_UNSPECIFIED {
		return fmt.Errorf("transport %s: %w", t.protocol, ErrNoDataPlane)
	}
	return nil
}

func (t *remoteTransport) Listen(ctx context.Context, addr string) (Listener, error) {
	if err := t.checkPlane(); err != nil {
		return nil, err
	}
	resp, err := t.tc.Listen(ctx, &wirev1.ListenRequest{Addr: addr})
	if err != nil {
		return nil, fromStatus("transport listen", err)
	}
	return &remoteListener{t: t, id: resp.GetListenerId(), addr: resp.GetAddr(), closed: make(chan struct{})}, nil
}

func (t *remoteTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if err := t.checkPlane(); err != nil {
		return nil, err
	}
	resp, err := t.tc.Dial(ctx, &wirev1.DialRequest{Addr: addr, DataPlane: t.plane})
	if err != nil {
		return nil, fromStatus("transport dial", err)
	}
	return t.attach(ctx, resp)
}

// attach connects the data plane of a connection the plugin handed over.
func (t *remoteTransport) attach(ctx context.Context, resp *wirev1.ConnResponse) (net.Conn, error) {
	local := NetAddr{Protocol: t.protocol, Address: resp.GetLocalAddr()}
	remote := NetAddr{Protocol: t.protocol, Address: resp.GetRemoteAddr()}
	if t.plane == wirev1.DataPlane_DATA_PLANE_SOCKET {
		c, err := attachSocket(ctx, resp)
		if err != nil {
			return nil, fmt.Errorf("transport %s: attach socket data plane: %w", t.protocol, err)
		}
		switch c := c.(type) {
		case *net.UnixConn:
			return &socketConn{UnixConn: c, local: local, remote: remote}, nil
		case *net.TCPConn:
			return &tcpConn{TCPConn: c, local: local, remote: remote}, nil
		default:
			return &addrConn{Conn: c, local: local, remote: remote}, nil
		}
	}
	c, err := attachStream(t.c.ctx, t.tc, resp, local, remote)
	if err != nil {
		return nil, fmt.Errorf("transport %s: attach stream data plane: %w", t.protocol, err)
	}
	return c, nil
}

// attachSocket attaches the socket data plane: the result is the unix
// connection relayed by the plugin, or the transport connection itself
// when the plugin handed its descriptor over.
func attachSocket(ctx context.Context, resp *wirev1.ConnResponse) (net.Conn, error) {
	path := resp.GetSocketPath()
	if path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("plugin gave socket path %q: want an absolute path", path)
	}
	if len(resp.GetToken()) != tokenSize {
		return nil, fmt.Errorf("plugin gave a %d-byte token: want %d", len(resp.GetToken()), tokenSize)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	c := nc.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	var hdr [socketHeaderSize]byte
	binary.BigEndian.PutUint64(hdr[:8], resp.GetConnId())
	copy(hdr[8:], resp.GetToken())
	if _, err := c.Write(hdr[:]); err != nil {
		_ = c.Close()
		return nil, err
	}
	var ack [1]byte
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(ack[:], oob)
	if err == nil && n != 1 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("plugin refused the attachment: %w", err)
	}
	switch ack[0] {
	case socketAck:
		if oobn > 0 {
			closeReceivedFDs(oob[:oobn])
		}
		_ = c.SetDeadline(time.Time{})
		return c, nil
	case socketAckFD:
		_ = c.Close()
		return connFromRights(oob[:oobn])
	}
	_ = c.Close()
	if oobn > 0 {
		closeReceivedFDs(oob[:oobn])
	}
	return nil, fmt.Errorf("plugin sent bad acknowledgement byte %#x", ack[0])
}

// connFromRights turns the one descriptor of an SCM_RIGHTS message into a
// net.Conn.
func connFromRights(oob []byte) (net.Conn, error) {
	fds, err := parseRights(oob)
	if err != nil {
		return nil, fmt.Errorf("descriptor hand-over: %w", err)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
		return nil, fmt.Errorf("descriptor hand-over: got %d descriptors, want 1", len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "transport-conn")
	defer f.Close() // FileConn holds its own duplicate
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("descriptor hand-over: %w", err)
	}
	return c, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		r, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

func closeReceivedFDs(oob []byte) {
	fds, _ := parseRights(oob)
	for _, fd := range fds {
		_ = syscall.Close(fd)
	}
}

// socketConn is a socket-mode connection: the unix connection itself (so
// io.Copy can splice), reporting the transport's addresses.
type socketConn struct {
	*net.UnixConn
	local, remote NetAddr
}

func (c *socketConn) LocalAddr() net.Addr  { return c.local }
func (c *socketConn) RemoteAddr() net.Addr { return c.remote }

// tcpConn is a TCP transport connection handed over by descriptor.
type tcpConn struct {
	*net.TCPConn
	local, remote NetAddr
}

func (c *tcpConn) LocalAddr() net.Addr  { return c.local }
func (c *tcpConn) RemoteAddr() net.Addr { return c.remote }

// addrConn reports the transport's addresses for any other connection.
type addrConn struct {
	net.Conn
	local, remote NetAddr
}

func (c *addrConn) LocalAddr() net.Addr  { return c.local }
func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

// remoteListener is a Listener in a plugin process.
type remoteListener struct {
	t         *remoteTransport
	id        uint64
	addr      string
	closeOnce sync.Once
	closed    chan struct{}
}

var _ Listener = (*remoteListener)(nil)

func (l *remoteListener) Accept(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := l.t.tc.Accept(ctx, &wirev1.AcceptRequest{ListenerId: l.id, DataPlane: l.t.plane})
	if err != nil {
		select {
		case <-l.closed:
			return nil, fmt.Errorf("transport accept: %w", net.ErrClosed)
		default:
		}
		return nil, fromStatus("transport accept", err)
	}
	return l.t.attach(ctx, resp)
}

func (l *remoteListener) Addr() string { return l.addr }

func (l *remoteListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		ctx, cancel := context.WithTimeout(l.t.c.ctx, 10*time.Second)
		defer cancel()
		_, err = l.t.tc.CloseListener(ctx, &wirev1.ListenerRef{ListenerId: l.id})
		err = fromStatus("transport close listener", err)
	})
	return err
}

// streamConn is a stream-mode connection: a gRPC bidirectional stream of
// chunks wrapped as a net.Conn. Read deadlines interrupt a blocked Read;
// write deadlines are checked before each chunk is sent.
type streamConn struct {
	stream        grpc.BidiStreamingClient[wirev1.Chunk, wirev1.Chunk]
	cancel        context.CancelFunc
	local, remote NetAddr

	chunks   chan []byte // closed at remote EOF or stream end
	recvErr  error       // set before chunks is closed
	recvDone chan struct{}

	rmu     sync.Mutex
	pending []byte

	wmu sync.Mutex

	closeOnce sync.Once
	closed    chan struct{}

	rdl, wdl connDeadline
}

func attachStream(pctx context.Context, tc wirev1.TransportClient, resp *wirev1.ConnResponse, local, remote NetAddr) (*streamConn, error) {
	// The stream lives as long as the connection, not the dial context;
	// it ends with the plugin process at the latest.
	ctx, cancel := context.WithCancel(pctx)
	stream, err := tc.Stream(ctx)
	if err != nil {
		cancel()
		return nil, fromStatus("open stream", err)
	}
	if err := stream.Send(&wirev1.Chunk{ConnId: resp.GetConnId(), Token: resp.GetToken()}); err != nil {
		cancel()
		return nil, fromStatus("open stream", err)
	}
	c := &streamConn{
		stream:   stream,
		cancel:   cancel,
		local:    local,
		remote:   remote,
		chunks:   make(chan []byte, 4),
		recvDone: make(chan struct{}),
		closed:   make(chan struct{}),
		rdl:      newConnDeadline(),
		wdl:      newConnDeadline(),
	}
	go c.receive()
	return c, nil
}

func (c *streamConn) receive() {
	defer close(c.recvDone)
	delivering := true
	finish := func(err error) {
		if delivering {
			c.recvErr = err
			close(c.chunks)
			delivering = false
		}
	}
	for {
		ch, err := c.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				finish(io.EOF)
			} else {
				finish(fromStatus("transport stream", err))
			}
			return
		}
		if !delivering {
			continue
		}
		if len(ch.GetData()) > 0 {
			select {
			case c.chunks <- ch.GetData():
			case <-c.closed:
				finish(net.ErrClosed)
			}
		}
		if ch.GetEof() {
			finish(io.EOF)
		}
	}
}

func (c *streamConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if c.rdl.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if len(b) == 0 {
		return 0, nil
	}
	select {
	case data, ok := <-c.chunks:
		if !ok {
			return 0, c.recvErr
		}
		n := copy(b, data)
		c.pending = data[n:]
		return n, nil
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.rdl.wait():
		return 0, os.ErrDeadlineExceeded
	}
}

func (c *streamConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := 0
	for len(b) > 0 || n == 0 {
		select {
		case <-c.closed:
			return n, net.ErrClosed
		default:
		}
		if c.wdl.expired() {
			return n, os.ErrDeadlineExceeded
		}
		if len(b) == 0 {
			return 0, nil
		}
		m := min(len(b), chunkSize)
		if err := c.stream.Send(&wirev1.Chunk{Data: b[:m]}); err != nil {
			return n, fmt.Errorf("transport stream write: %w", io.ErrClosedPipe)
		}
		n += m
		b = b[m:]
	}
	return n, nil
}

// Close sends close to the plugin, waits briefly for it to end the stream
// and then cancels the stream.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		go func() {
			c.wmu.Lock()
			_ = c.stream.Send(&wirev1.Chunk{Close: true})
			_ = c.stream.CloseSend()
			c.wmu.Unlock()
		}()
		t := time.NewTimer(5 * time.Second)
		select {
		case <-c.recvDone:
		case <-t.C:
		}
		t.Stop()
		c.cancel()
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { c.rdl.set(t); return nil }
func (c *streamConn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// connDeadline is a settable deadline with a channel closed when it passes
// (the pattern of net.Pipe).
type connDeadline struct {
	mu     *sync.Mutex
	timer  **time.Timer
	cancel *chan struct{}
}

func newConnDeadline() connDeadline {
	ch := make(chan struct{})
	var t *time.Timer
	return connDeadline{mu: &sync.Mutex{}, timer: &t, cancel: &ch}
}

func (d connDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if *d.timer != nil && !(*d.timer).Stop() {
		<-*d.cancel // wait for the timer callback to close it
	}
	*d.timer = nil
	closed := isClosedChan(*d.cancel)
	if t.IsZero() {
		if closed {
			*d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			*d.cancel = make(chan struct{})
		}
		ch := *d.cancel
		*d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(*d.cancel)
	}
}

func (d connDeadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.cancel
}

func (d connDeadline) expired() bool { return isClosedChan(d.wait()) }

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
