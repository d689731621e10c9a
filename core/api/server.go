package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/peersource"
)

// SocketName is the client API socket's file name in the data directory.
const SocketName = "skein.sock"

// SocketPath returns the client API socket of the node whose data
// directory is dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Errors of Listen.
var (
	// ErrTokenRequired: a TCP address was configured without a token.
	ErrTokenRequired = errors.New("the client API on TCP requires a bearer token (api.token_file)")
	// ErrAlreadyRunning: a node already serves on the socket.
	ErrAlreadyRunning = errors.New("a node is already serving on this socket")
)

// Config says where the API listens.
type Config struct {
	// Socket is the unix socket path (SocketPath(dataDir)). Required.
	Socket string
	// TCP is an optional "host:port" to also serve on; "" for none.
	TCP string
	// Token is the bearer token TCP clients must send; required with TCP.
	// Never logged.
	Token string
	// Logger; nil: discard.
	Logger *slog.Logger
	// PeerSources says how each peer was found (Peers.List), and records
	// the peers of Peers.Connect as peersource.Manual. nil: none known.
	PeerSources *peersource.Book
	// Plugins reports the node's plugins for Node.Plugins (skein run
	// passes core/node's health report); nil: the call is UNIMPLEMENTED.
	Plugins func(ctx context.Context) []*apiv1.PluginStatus
	// SendWindow is the most sends one Messages.SendStream keeps begun and
	// unacknowledged (it stops reading the stream meanwhile). 0 or more
	// than apiv1.MaxSendsInFlight: apiv1.MaxSendsInFlight (256).
	SendWindow int
}

// Server serves the client API.
type Server struct {
	m      *messenger.Messenger
	logger *slog.Logger
	socket string
	unix   net.Listener
	tcp    net.Listener
	local  *grpc.Server
	remote *grpc.Server
	stop   sync.Once
	// stopping is closed when Stop begins: open streams end (stopping.go).
	stopping chan struct{}
}

// Listen opens the listeners: the unix socket (created under a temporary
// name, set to mode 0600 and renamed into place, so it is never reachable
// with wider permissions) and the TCP address if configured. A stale socket
// left by a dead node is replaced; a live one is ErrAlreadyRunning.
func Listen(m *messenger.Messenger, cfg Config) (*Server, error) {
	if m == nil || cfg.Socket == "" {
		return nil, errors.New("api listen: messenger and socket path are required")
	}
	if cfg.TCP != "" && cfg.Token == "" {
		return nil, fmt.Errorf("api listen on %s: %w", cfg.TCP, ErrTokenRequired)
	}
	s := &Server{m: m, logger: cfg.Logger, socket: cfg.Socket, stopping: make(chan struct{})}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	ul, err := listenUnix(cfg.Socket)
	if err != nil {
		return nil, err
	}
	s.unix = ul
	if cfg.TCP != "" {
		tl, err := net.Listen("tcp", cfg.TCP)
		if err != nil {
			ul.Close()
			os.Remove(cfg.Socket)
			return nil, fmt.Errorf("api listen on %s: %w", cfg.TCP, err)
		}
		s.tcp = tl
		auth := bearer{want: sha256.Sum256([]byte(cfg.Token))}
		s.remote = grpc.NewServer(grpc.UnaryInterceptor(auth.unary), grpc.ChainStreamInterceptor(auth.stream, s.endStreamsOnStop))
		register(s.remote, m, cfg)
	}
	s.local = grpc.NewServer(grpc.StreamInterceptor(s.endStreamsOnStop))
	register(s.local, m, cfg)
	return s, nil
}

func listenUnix(path string) (net.Listener, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("api socket path %s is too long for a unix socket (%d bytes; keep the data directory path short)", path, len(path))
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: %w", path, ErrAlreadyRunning)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return ul, nil
}

// Socket returns the unix socket path.
func (s *Server) Socket() string { return s.socket }

// TCPAddr returns the TCP listener's address, or nil.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Serve serves until Stop; it returns nil after Stop.
func (s *Server) Serve() error {
	errc := make(chan error, 2)
	go func() { errc <- s.local.Serve(s.unix) }()
	n := 1
	if s.remote != nil {
		n++
		go func() { errc <- s.remote.Serve(s.tcp) }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) && first == nil {
			first = err
			s.Stop(context.Background())
		}
	}
	return first
}

// Stop stops serving: gracefully until ctx ends, then at once (open
// subscriptions end). It removes the socket. Stop is idempotent.
func (s *Server) Stop(ctx context.Context) {
	s.stop.Do(func() {
		close(s.stopping)
		done := make(chan struct{})
		go func() {
			s.local.GracefulStop()
			if s.remote != nil {
				s.remote.GracefulStop()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.local.Stop()
			if s.remote != nil {
				s.remote.Stop()
			}
			<-done
		}
		s.unix.Close()
		os.Remove(s.socket)
	})
}

// bearer checks "authorization: Bearer <token>" on every call. The token
// is compared as a SHA-256 digest in constant time, so neither its bytes
// nor its length leak through timing.
type bearer struct{ want [32]byte }

func (b bearer) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, "missing bearer token: send \"authorization: Bearer <token>\"")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	got := sha256.Sum256([]byte(tok))
	if !ok || subtle.ConstantTimeCompare(got[:], b.want[:]) != 1 {
		return status.Error(codes.Unauthenticated, "wrong bearer token")
	}
	return nil
}

func (b bearer) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (b bearer) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := b.check(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}
