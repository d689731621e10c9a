package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/skein-p2p/skein/sdk"
)

// instance is one run of a plugin: one process (or one linked-in value)
// from launch to exit. A restart makes a new instance with a higher gen.
type instance struct {
	gen     uint64
	started time.Time

	life      sdk.Plugin
	store     sdk.Store
	transport sdk.Transport
	discovery sdk.Discovery
	network   sdk.Network
	status    sdk.StatusReporter
	desc      sdk.Description
	remote    remoteKinds // nil when linked in
	// addr is where the plugin process serves the wire (nil when linked
	// in): another process reaches its transport there (attach.go).
	addr net.Addr

	pid int
	// exited is closed when the process is gone; nil (never ready) for a
	// linked-in plugin, which cannot crash without taking the node along.
	exited <-chan struct{}
	// kill ends the process at once (nil when linked in).
	kill func()
	// release closes the connection and reaps the process (go-plugin's
	// Kill: graceful shutdown, then SIGKILL after 2s); nil when linked in.
	release func()
	// exitStatus describes how the process ended (after exited).
	exitStatus func() string
}

func (in *instance) dead() bool {
	if in.exited == nil {
		return false
	}
	select {
	case <-in.exited:
		return true
	default:
		return false
	}
}

// kinds fills the kind fields of a linked-in plugin by type assertion.
func (in *instance) linkedKinds(p sdk.Plugin) {
	in.store, _ = p.(sdk.Store)
	in.transport, _ = p.(sdk.Transport)
	in.discovery, _ = p.(sdk.Discovery)
	in.network, _ = p.(sdk.Network)
	in.status, _ = p.(sdk.StatusReporter)
}

func newLinkedInstance(spec Spec) (*instance, error) {
	f, ok := Lookup(spec.ID)
	if !ok {
		return nil, fmt.Errorf("plugin %s: %w: %q (registered: %s)", spec.Name, ErrUnknownPlugin, spec.ID, strings.Join(Registered(), ", "))
	}
	p := f()
	if p == nil {
		return nil, fmt.Errorf("plugin %s: factory for %q returned nil", spec.Name, spec.ID)
	}
	in := &instance{life: p}
	in.linkedKinds(p)
	return in, nil
}

// launchProcess checks the binary, starts it and completes the go-plugin
// handshake; the plugin is not yet described, configured or started.
func launchProcess(spec Spec, logger *slog.Logger) (*instance, error) {
	// Hash and run the same file: a bare name would be looked up in PATH
	// by exec but not by the hash.
	abs, err := filepath.Abs(spec.Command)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: path %q: %w", spec.Name, spec.Command, err)
	}
	spec.Command = abs
	if err := checkBinary(spec); err != nil {
		return nil, err
	}
	var pr *processRunner
	tail := &stderrTail{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		// The host builds the command itself: go-plugin's cmd carries only
		// its own variables (SkipHostEnv), which pluginEnv adds last.
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			r, err := newProcessRunner(spec.Command, spec.Args, pluginEnv(spec, cmd.Env, os.LookupEnv))
			pr = r
			return r, err
		},
		SkipHostEnv: true,
		// The plugin's sockets (go-plugin's, the transport data plane's)
		// go in a directory made for it there and removed when it is gone.
		UnixSocketConfig: &goplugin.UnixSocketConfig{TempDir: socketTempDir()},
		StartTimeout:     spec.StartTimeout,
		Logger:           newHCLog(logger),
		Stderr:           tail,
		SyncStderr:       &lineLogger{l: logger, stream: "stderr", level: slog.LevelInfo},
		SyncStdout:       &lineLogger{l: logger, stream: "stdout", level: slog.LevelWarn},
	})
	fail := func(err error) (*instance, error) {
		client.Kill()
		return nil, err
	}
	rpc, err := client.Client()
	if err != nil {
		client.Kill() // reaps the process, so its exit status is known
		msg := oneLine(err)
		if pr != nil && pr.pid() != 0 {
			select {
			case <-pr.exited:
				msg += "; process status: " + pr.exitStatus()
			default:
			}
		}
		if t := tail.String(); t != "" {
			msg += "; its stderr ends: " + t
		}
		return nil, fmt.Errorf("plugin %s: %w: %s: %s", spec.Name, ErrHandshake, spec.Command, msg)
	}
	in, err := dispense(spec, rpc)
	if err != nil {
		return fail(err)
	}
	in.pid = pr.pid()
	if rc := client.ReattachConfig(); rc != nil {
		in.addr = rc.Addr
	}
	in.exited = pr.exited
	in.kill = func() { _ = pr.Kill(context.Background()) }
	in.release = client.Kill
	in.exitStatus = pr.exitStatus
	return in, nil
}

// reattachProcess connects to a plugin started by hand in debug mode.
func reattachProcess(spec Spec, logger *slog.Logger) (*instance, error) {
	rc, err := sdk.ParseReattach(strings.TrimPrefix(strings.TrimSpace(spec.Reattach), sdk.ReattachEnv+"="))
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", spec.Name, err)
	}
	ar, err := newAttachedRunner(rc.Pid)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: reattach: %w", spec.Name, err)
	}
	rc.ReattachFunc = func() (runner.AttachedRunner, error) { return ar, nil }
	// go-plugin takes the plugin set from Plugins, not VersionedPlugins,
	// when reattaching.
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.HostPluginSets()[sdk.ProtocolVersion],
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Reattach:         rc,
		StartTimeout:     spec.StartTimeout,
		Logger:           newHCLog(logger),
		SyncStderr:       &lineLogger{l: logger, stream: "stderr", level: slog.LevelInfo},
		SyncStdout:       &lineLogger{l: logger, stream: "stdout", level: slog.LevelWarn},
	})
	fail := func(err error) (*instance, error) {
		client.Kill()
		close(ar.stopPoll)
		return nil, err
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("plugin %s: %w: reattach to pid %d: %v", spec.Name, ErrHandshake, rc.Pid, oneLine(err)))
	}
	in, err := dispense(spec, rpc)
	if err != nil {
		return fail(err)
	}
	in.pid = rc.Pid
	in.addr = rc.Addr
	in.exited = ar.exited
	in.kill = func() { _ = ar.Kill(context.Background()) }
	var once sync.Once
	in.release = func() {
		client.Kill()
		once.Do(func() { close(ar.stopPoll) })
	}
	in.exitStatus = func() string { return "exited" }
	return in, nil
}

func dispense(spec Spec, rpc goplugin.ClientProtocol) (*instance, error) {
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w: dispense: %v", spec.Name, ErrHandshake, err)
	}
	remote, err := sdk.Remote(raw, sdk.WithDataPlane(spec.DataPlane))
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w: %v", spec.Name, ErrHandshake, err)
	}
	in := &instance{life: remote}
	in.status, _ = any(remote).(sdk.StatusReporter)
	in.remote, _ = any(remote).(remoteKinds)
	return in, nil
}

// remoteKinds is what *sdk.RemotePlugin offers beyond the lifecycle: the
// kinds the plugin declared in Describe.
type remoteKinds interface {
	Store() (sdk.Store, bool)
	Transport() (sdk.Transport, bool)
	Discovery() (sdk.Discovery, bool)
}

// A change of *sdk.RemotePlugin's kind accessors must break the build here,
// not silently drop kinds at run time.
var _ remoteKinds = (*sdk.RemotePlugin)(nil)

// resolveKinds fills the kind fields of an out-of-process instance after
// Describe; a linked-in one has them already.
func (in *instance) resolveKinds() error {
	if in.remote == nil {
		return nil
	}
	in.store, _ = in.remote.Store()
	in.transport, _ = in.remote.Transport()
	in.discovery, _ = in.remote.Discovery()
	if rn, ok := in.remote.(remoteNetwork); ok {
		in.network, _ = rn.Network()
	}
	return nil
}

// initialise describes, configures and starts a launched instance, each
// step bounded by StartTimeout. On error the caller discards the instance.
func initialise(ctx context.Context, spec Spec, in *instance) ([]sdk.Diagnostic, error) {
	step := func(name string, fn func(ctx context.Context) error) error {
		sctx, cancel := context.WithTimeout(ctx, spec.StartTimeout)
		defer cancel()
		if err := fn(sctx); err != nil {
			if in.exited != nil && (in.dead() || errors.Is(err, sdk.ErrPluginUnavailable)) {
				// Give the exit a moment to be reaped so the error says how
				// the process ended.
				t := time.NewTimer(time.Second)
				defer t.Stop()
				status := "connection lost"
				select {
				case <-in.exited:
					status = "exited: " + in.exitStatus()
				case <-t.C:
				}
				return fmt.Errorf("plugin %s: %s: %w (%s): %v", spec.Name, name, ErrPluginCrashed, status, err)
			}
			if strings.HasPrefix(err.Error(), name+": ") { // the remote plugin named the call
				return fmt.Errorf("plugin %s: %w", spec.Name, err)
			}
			return fmt.Errorf("plugin %s: %s: %w", spec.Name, name, err)
		}
		return nil
	}
	if err := step("describe", func(ctx context.Context) error {
		d, err := in.life.Describe(ctx)
		in.desc = d
		return err
	}); err != nil {
		return nil, err
	}
	if spec.ID != "" && in.desc.ID != spec.ID {
		return nil, fmt.Errorf("plugin %s: describes itself as %q, config expects %q", spec.Name, in.desc.ID, spec.ID)
	}
	var diags []sdk.Diagnostic
	if err := step("configure", func(ctx context.Context) error {
		var err error
		diags, err = in.life.Configure(ctx, spec.Config)
		return err
	}); err != nil {
		return diags, err
	}
	var problems []string
	for _, d := range diags {
		if d.Severity != sdk.SeverityWarning { // unknown severities count as errors: fail closed
			key := "plugins." + spec.Name + ".config"
			if d.Key != "" {
				key += "." + d.Key
			}
			problems = append(problems, key+": "+d.Message)
		}
	}
	if len(problems) > 0 {
		return diags, fmt.Errorf("plugin %s: %w: %s", spec.Name, ErrConfigRejected, strings.Join(problems, "; "))
	}
	if err := in.resolveKinds(); err != nil {
		return diags, fmt.Errorf("plugin %s: %w", spec.Name, err)
	}
	return diags, step("start", in.life.Start)
}

// socketTempDir is where plugin socket directories are made: the temp
// directory, unless its path is so long that a socket path in it would not
// fit a unix socket address (108 bytes, and go-plugin's names take ~40).
func socketTempDir() string {
	if d := os.TempDir(); len(d) <= 60 {
		return d
	}
	return "/tmp"
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// stderrTail keeps the end of what a plugin wrote to stderr before the
// handshake, for the error when the handshake fails.
type stderrTail struct {
	mu  sync.Mutex
	buf []byte
}

const stderrTailSize = 512

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	t.buf = append(t.buf, ' ') // go-plugin writes lines without their newline
	if len(t.buf) > stderrTailSize {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-stderrTailSize:]...)
	}
	return len(p), nil
}

func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(strings.Fields(string(t.buf)), " ")
}
