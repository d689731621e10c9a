package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// maxMessageBytes caps one wire message (a batch, a value) that a plugin
// accepts; gRPC's default of 4 MiB is too small for store batches.
const maxMessageBytes = 256 << 20

// streamWindowBytes is the HTTP/2 flow-control window on both sides: the
// default 64 KiB caps a stream-mode transport far below what the machine
// can move.
const streamWindowBytes = 4 << 20

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	logLevel     slog.Level
	parentPoll   time.Duration
	stopTimeout  time.Duration
	test         *plugin.ServeTestConfig
	stderr       io.Writer
	exit         func(code int)
	debugEnvName string
}

// WithLogLevel sets the lowest level the plugin's default slog logger
// writes to stderr (default slog.LevelInfo). Logs never go to stdout,
// which carries the handshake.
func WithLogLevel(l slog.Level) ServeOption {
	return func(c *serveConfig) { c.logLevel = l }
}

// WithParentPoll sets how often Serve checks that its parent process is
// still alive (default 1s); 0 or less disables the watch.
func WithParentPoll(d time.Duration) ServeOption {
	return func(c *serveConfig) { c.parentPoll = d }
}

// WithStopTimeout bounds the Stop that Serve calls on a started plugin when
// serving ends without the host having stopped it (default 5s).
func WithStopTimeout(d time.Duration) ServeOption {
	return func(c *serveConfig) { c.stopTimeout = d }
}

// WithTestConfig serves in go-plugin's test mode: no magic cookie, the
// reattach config is sent on tc.ReattachConfigCh and serving ends when
// tc.Context ends; the parent watch is off. For hosts' own tests.
func WithTestConfig(tc *plugin.ServeTestConfig) ServeOption {
	return func(c *serveConfig) { c.test = tc }
}

// Serve serves p over the v1 wire protocol: its lifecycle and every kind it
// implements (Store, Transport, Discovery). A plugin's main is one line:
//
//	func main() { sdk.Serve(myplugin.New()) }
//
// Serve sets slog's default logger to one writing JSON lines to stderr
// (hclog's keys, so the host logs them under the plugin's name) and to the
// host's Events stream. It exits the process when its parent dies. It
// returns only in test mode; otherwise it exits the process when serving
// ends. Started by hand with SKEIN_PLUGIN_DEBUG=1 it runs in debug mode:
// it prints a SKEIN_PLUGIN_REATTACH=<json> line to stderr for a host to
// attach to (see ParseReattach) and serves until interrupted.
func Serve(p Plugin, opts ...ServeOption) {
	ServeFunc(func() Plugin { return p }, opts...)
}

// ServeFunc is Serve for the plugin newPlugin makes, called once Serve has
// set slog's default logger. Use it when the plugin keeps slog.Default()
// when it is made (New(...) storing a logger): with Serve(New()) such a
// plugin logs through the default logger of before, whose records reach
// the host as plain text lines at INFO, their level and fields lost.
//
//	func main() { sdk.ServeFunc(func() sdk.Plugin { return mynetwork.New() }) }
func ServeFunc(newPlugin func() Plugin, opts ...ServeOption) {
	cfg := serveConfig{
		logLevel:    slog.LevelInfo,
		parentPoll:  time.Second,
		stopTimeout: 5 * time.Second,
		stderr:      os.Stderr,
		exit:        os.Exit,
	}
	for _, o := range opts {
		o(&cfg)
	}
	code := serve(newPlugin, cfg)
	if cfg.test == nil {
		cfg.exit(code)
	}
}

func serve(newPlugin func() Plugin, cfg serveConfig) int {
	// go-plugin replaces os.Stderr with a pipe once serving; keep the real
	// one for logs.
	stderr := cfg.stderr
	hub := newEventHub()
	inner := slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel, ReplaceAttr: hclogReplace})
	logger := slog.New(newTeeHandler(inner, hub))
	slog.SetDefault(logger)

	srv := newPluginServer(newPlugin(), hub, logger)
	defer srv.shutdown(cfg.stopTimeout)

	sc := &plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &grpcPlugin{srv: srv}},
		},
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			o = append(o, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes),
				grpc.InitialWindowSize(streamWindowBytes), grpc.InitialConnWindowSize(streamWindowBytes),
				grpc.StatsHandler(connTracker{s: srv}))
			return grpc.NewServer(o...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Level:      hclog.Warn,
			Output:     stderr,
			JSONFormat: true,
		}),
		Test: cfg.test,
	}

	switch {
	case cfg.test != nil:
	case os.Getenv(DebugEnv) == "1":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		reattach := make(chan *plugin.ReattachConfig, 1)
		closed := make(chan struct{})
		sc.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
		go func() {
			select {
			case rc := <-reattach:
				info := ReattachInfo{
					Protocol:        string(rc.Protocol),
					ProtocolVersion: rc.ProtocolVersion,
					Pid:             rc.Pid,
					Network:         rc.Addr.Network(),
					Address:         rc.Addr.String(),
				}
				b, _ := json.Marshal(info)
				fmt.Fprintf(stderr, "%s=%s\n", ReattachEnv, b)
			case <-ctx.Done():
			}
		}()
		plugin.Serve(sc)
		<-closed
		return 0
	default:
		if cfg.parentPoll > 0 {
			go watchParent(cfg.parentPoll, func() {
				logger.Error("parent process died; exiting")
				srv.shutdown(cfg.stopTimeout)
				cfg.exit(1)
			})
		}
	}
	plugin.Serve(sc)
	return 0
}

// watchParent calls died once the parent process has gone (the process is
// reparented, so its parent pid changes). Pdeathsig set by the host covers
// the common case; this covers hosts that cannot set it.
func watchParent(every time.Duration, died func()) {
	ppid := os.Getppid()
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			died()
			return
		}
	}
}
