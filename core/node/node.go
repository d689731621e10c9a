package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

// Errors of the node's lifecycle.
var (
	// ErrNotStarted is returned by calls that need a started node.
	ErrNotStarted = errors.New("node is not started")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("node was already started")
	// ErrNoSuchPlugin is returned for a plugin name that is not running.
	ErrNoSuchPlugin = errors.New("no such plugin")
)

// ServeCommand are the arguments after the skein binary that serve the
// built-in plugin id out of process: `skein plugin serve <id>`.
func ServeCommand(id, logLevel string) []string {
	return []string{"plugin", "serve", id, "--log-level", logLevel}
}

// Option configures New.
type Option func(*Node) error

// WithLogger sets the node's logger (default slog.Default()). Plugin logs
// go through it with a "plugin" attribute.
func WithLogger(l *slog.Logger) Option {
	return func(n *Node) error {
		if l == nil {
			return errors.New("node: nil logger")
		}
		n.logger = l
		return nil
	}
}

// WithSelfCommand sets the binary that serves built-in plugins out of
// process (`path plugin serve <id>`) and its sha256. Default: the running
// executable (pluginhost.SelfCommand), which is right for the skein binary.
func WithSelfCommand(path, sha256Hex string) Option {
	return func(n *Node) error {
		if path == "" || sha256Hex == "" {
			return errors.New("node: self command needs a path and its sha256")
		}
		n.selfPath, n.selfSum = path, sha256Hex
		return nil
	}
}

// Node is a running Skein node: for now, its plugins.
type Node struct {
	cfg      *config.Config
	logger   *slog.Logger
	selfPath string
	selfSum  string

	mu        sync.Mutex
	host      *pluginhost.Host
	startTime map[string]time.Duration
	started   bool
	stopped   bool
	// runCancel ends what runs as long as the node (transport
	// attachments); called by Stop.
	runCancel context.CancelFunc
	// unlock releases the data directory (LockDataDir); nil when not held.
	unlock func() error
}

// New returns a node for cfg. It has no side effects; Start starts it.
func New(cfg *config.Config, opts ...Option) (*Node, error) {
	if cfg == nil {
		return nil, errors.New("node: nil config")
	}
	n := &Node{cfg: cfg, logger: slog.Default(), startTime: map[string]time.Duration{}}
	for _, o := range opts {
		if err := o(n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Config is the node's configuration.
func (n *Node) Config() *config.Config { return n.cfg }

// Spec converts the config of the plugin named name into the Spec the
// plugin host runs. A built-in in process mode re-executes the self
// command (`skein plugin serve <id>`).
func (n *Node) Spec(name string) (pluginhost.Spec, error) {
	p, ok := n.cfg.Plugins[name]
	if !ok {
		return pluginhost.Spec{}, fmt.Errorf("plugin %s: %w in config", name, ErrNoSuchPlugin)
	}
	mode, err := pluginhost.ParseMode(string(p.Mode))
	if err != nil {
		return pluginhost.Spec{}, fmt.Errorf("plugin %s: %w", name, err)
	}
	spec := pluginhost.Spec{
		Name:         name,
		ID:           p.ID,
		Mode:         mode,
		Env:          p.Env,
		PassEnv:      p.PassEnv,
		Reattach:     p.Reattach,
		Config:       p.Config,
		StartTimeout: p.StartTimeout,
		StopTimeout:  p.StopTimeout,
		Restart: pluginhost.RestartPolicy{
			Base: p.Restart.InitialBackoff,
			Max:  p.Restart.MaxBackoff,
		},
	}
	if mode == pluginhost.ModeProcess {
		if p.Path != "" {
			spec.Command, spec.Args, spec.SHA256 = p.Path, p.Args, p.SHA256
		} else {
			path, sum, err := n.self()
			if err != nil {
				return pluginhost.Spec{}, fmt.Errorf("plugin %s: %w", name, err)
			}
			spec.Command, spec.SHA256 = path, sum
			spec.Args = ServeCommand(p.ID, n.cfg.Node.Log.Level)
		}
	}
	return spec, nil
}

func (n *Node) self() (string, string, error) {
	if n.selfPath != "" {
		return n.selfPath, n.selfSum, nil
	}
	return pluginhost.SelfCommand()
}

// Start creates the data directory (0700) if needed and takes it
// (LockDataDir: a second node on it gets an *InUseError naming the first
// one's pid), checks the built-in plugins' config, and starts every
// enabled plugin in name order. On error
// every plugin already started is stopped again and the error names the
// plugin; a config problem is a *config.InvalidError.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.started {
		n.mu.Unlock()
		return ErrAlreadyStarted
	}
	n.started = true
	n.host = pluginhost.New(n.logger)
	host := n.host
	runCtx, runCancel := context.WithCancel(context.WithoutCancel(ctx))
	n.runCancel = runCancel
	n.mu.Unlock()

	unlock, err := LockDataDir(n.cfg.Node.DataDir)
	if err != nil {
		var inUse *InUseError
		if errors.As(err, &inUse) {
			return err // one line, whoever prints it
		}
		return fmt.Errorf("start node: %w", err)
	}
	n.mu.Lock()
	n.unlock = unlock
	n.mu.Unlock()
	if fi, err := os.Stat(n.cfg.Node.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		n.logger.Warn("data directory is readable by others; chmod 700 it", "data_dir", n.cfg.Node.DataDir, "mode", fi.Mode().Perm().String())
	}
	warnings, err := CheckPlugins(ctx, n.cfg)
	for _, w := range warnings {
		n.logger.Warn("plugin config", "problem", w.String())
	}
	if err != nil {
		n.stopAfterFailure(host)
		return err
	}
	for _, name := range n.cfg.PluginNames() {
		spec, err := n.Spec(name)
		if err != nil {
			n.stopAfterFailure(host)
			return fmt.Errorf("start node: %w", err)
		}
		t0 := time.Now()
		p, err := host.Launch(ctx, spec)
		if err != nil {
			n.stopAfterFailure(host)
			return fmt.Errorf("start node: %w", err)
		}
		took := time.Since(t0)
		n.mu.Lock()
		n.startTime[name] = took
		n.mu.Unlock()
		d := p.Description()
		n.logger.Info("plugin up", "plugin", name, "id", d.ID, "version", d.Version,
			"mode", spec.Mode.String(), "pid", p.PID(), "kinds", d.Kinds, "start", took.Round(time.Microsecond))
	}
	if err := n.attachTransports(runCtx, host); err != nil {
		runCancel()
		n.stopAfterFailure(host)
		return err
	}
	return nil
}

func (n *Node) stopAfterFailure(host *pluginhost.Host) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Node.ShutdownTimeout)
	defer cancel()
	if err := host.Stop(ctx); err != nil {
		n.logger.Warn("stop plugins after a failed start", "error", err)
	}
	n.releaseDataDir()
}

// releaseDataDir gives the data directory's lock back (once).
func (n *Node) releaseDataDir() {
	n.mu.Lock()
	unlock := n.unlock
	n.unlock = nil
	n.mu.Unlock()
	if unlock != nil {
		if err := unlock(); err != nil {
			n.logger.Warn("release the data directory", "error", err)
		}
	}
}

// Stop stops every plugin, in reverse start order, within ctx (each plugin
// also has its own stop_timeout; a plugin still running then is killed).
// It is idempotent and safe after a failed or partial Start.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	host := n.host
	already := n.stopped
	n.stopped = true
	if n.runCancel != nil {
		n.runCancel()
	}
	n.mu.Unlock()
	if host == nil || already {
		return nil
	}
	defer n.releaseDataDir() // after the plugins, which use the directory
	if err := host.Stop(ctx); err != nil {
		return fmt.Errorf("stop node: %w", err)
	}
	return nil
}

// Plugin returns the running plugin named name.
func (n *Node) Plugin(name string) (*pluginhost.Plugin, error) {
	n.mu.Lock()
	host := n.host
	n.mu.Unlock()
	if host == nil {
		return nil, ErrNotStarted
	}
	p, ok := host.Plugin(name)
	if !ok {
		return nil, fmt.Errorf("plugin %s: %w", name, ErrNoSuchPlugin)
	}
	return p, nil
}

// Store returns the store served by the plugin named name. The store stays
// valid across restarts of an out-of-process plugin.
func (n *Node) Store(name string) (sdk.Store, error) {
	p, err := n.Plugin(name)
	if err != nil {
		return nil, err
	}
	return p.Store()
}

// PluginHealth is one plugin's health, for `skein plugins` and the demo.
type PluginHealth struct {
	Name    string     `json:"name"`
	ID      string     `json:"id"`
	Version string     `json:"version"`
	Kinds   []sdk.Kind `json:"kinds"`
	Mode    string     `json:"mode"`
	// PID is the plugin process (0 when linked in or down).
	PID   int    `json:"pid"`
	State string `json:"state"`
	// Restarts counts restarts after crashes.
	Restarts int `json:"restarts"`
	// StartTime is how long the first start took: launch, handshake,
	// Describe, Configure and Start.
	StartTime time.Duration     `json:"start_time_ns"`
	Healthy   bool              `json:"healthy"`
	Message   string            `json:"message,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	// LastError is the last crash or failed restart, if any.
	LastError string `json:"last_error,omitempty"`
}

// Health asks every plugin for its status (bounded by ctx) and returns one
// entry per running plugin, in start order. A plugin that does not answer
// is reported unhealthy with the error.
func (n *Node) Health(ctx context.Context) []PluginHealth {
	n.mu.Lock()
	host := n.host
	n.mu.Unlock()
	if host == nil {
		return nil
	}
	var out []PluginHealth
	for _, p := range host.Plugins() {
		d := p.Description()
		h := PluginHealth{
			Name: p.Name(), ID: d.ID, Version: d.Version, Kinds: d.Kinds,
			Mode: p.Mode().String(), PID: p.PID(), State: p.State().String(),
			Restarts: p.Restarts(),
		}
		n.mu.Lock()
		h.StartTime = n.startTime[p.Name()]
		n.mu.Unlock()
		if err := p.LastError(); err != nil {
			h.LastError = err.Error()
		}
		st, err := p.Status(ctx)
		if err != nil {
			h.Message = err.Error()
		} else {
			h.Healthy, h.Message, h.Details = st.Healthy, st.Message, st.Details
		}
		out = append(out, h)
	}
	return out
}
