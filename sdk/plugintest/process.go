package plugintest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/skein-p2p/skein/sdk"
)

// ChildEnv names, in a re-executed test binary, the plugin Main serves.
const ChildEnv = "SKEIN_PLUGINTEST_CHILD"

// Main is called from a test package's TestMain. When the process is a
// child started by StartProcess it serves the plugin named by ChildEnv and
// exits; otherwise it runs the tests and exits with their code.
func Main(m *testing.M, plugins map[string]func() sdk.Plugin) {
	if name := os.Getenv(ChildEnv); name != "" {
		newPlugin, ok := plugins[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "plugintest: no plugin %q registered in Main\n", name)
			os.Exit(2)
		}
		sdk.ServeFunc(newPlugin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// LogsEnv set to "1" sends every plugin's logs to the test's stderr.
const LogsEnv = "SKEIN_PLUGINTEST_LOGS"

// ProcessOption configures StartProcess and StartBinary.
type ProcessOption func(*processConfig)

type processConfig struct {
	describe  bool
	config    map[string]any
	configure bool
	start     bool
	dataPlane sdk.DataPlane
	logs      io.Writer
	env       []string
}

// WithConfig configures the plugin with cfg (and fails the test on any
// diagnostic of error severity) before it is started.
func WithConfig(cfg map[string]any) ProcessOption {
	return func(c *processConfig) { c.config = cfg; c.configure = true }
}

// WithoutStart leaves the plugin described but neither configured nor
// started (for lifecycle tests).
func WithoutStart() ProcessOption {
	return func(c *processConfig) { c.start = false; c.configure = false }
}

// WithoutDescribe returns the plugin right after the handshake, before
// even Describe (so Store, Transport and Discovery are not yet usable).
func WithoutDescribe() ProcessOption {
	return func(c *processConfig) { c.describe = false; c.start = false; c.configure = false }
}

// WithDataPlane forces the transport data plane of the remote plugin.
func WithDataPlane(d sdk.DataPlane) ProcessOption {
	return func(c *processConfig) { c.dataPlane = d }
}

// WithLogs sends the plugin's logs to w (default: discarded; LogsEnv=1
// sends them to stderr): its slog records at their level with their
// fields, and any other line it wrote to stderr.
func WithLogs(w io.Writer) ProcessOption {
	return func(c *processConfig) { c.logs = w }
}

// WithEnv adds environment variables ("K=V") to the plugin process.
func WithEnv(kv ...string) ProcessOption {
	return func(c *processConfig) { c.env = append(c.env, kv...) }
}

// StartProcess runs the plugin registered under name in Main in a child
// process (this test binary re-executed) through the real go-plugin
// handshake, describes it, configures it (with WithConfig, else with an
// empty config) and starts it. The process is stopped and killed when the
// test ends.
func StartProcess(t testing.TB, name string, opts ...ProcessOption) *sdk.RemotePlugin {
	t.Helper()
	rp, _ := StartProcessWithClient(t, name, opts...)
	return rp
}

// StartProcessWithClient is StartProcess that also returns the go-plugin
// client, for tests that kill the plugin or read its process id.
func StartProcessWithClient(t testing.TB, name string, opts ...ProcessOption) (*sdk.RemotePlugin, *plugin.Client) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("plugintest: find test binary: %v", err)
	}
	return start(t, exe, []string{ChildEnv + "=" + name}, opts)
}

// StartBinary runs the plugin binary at path through the real handshake,
// like StartProcess.
func StartBinary(t testing.TB, path string, opts ...ProcessOption) *sdk.RemotePlugin {
	t.Helper()
	rp, _ := start(t, path, nil, opts)
	return rp
}

// StartBinaryWithClient is StartBinary that also returns the go-plugin
// client, for tests that kill the plugin or read its process id.
func StartBinaryWithClient(t testing.TB, path string, opts ...ProcessOption) (*sdk.RemotePlugin, *plugin.Client) {
	t.Helper()
	return start(t, path, nil, opts)
}

func start(t testing.TB, path string, env []string, opts []ProcessOption) (*sdk.RemotePlugin, *plugin.Client) {
	t.Helper()
	cfg := processConfig{describe: true, start: true, configure: true, logs: io.Discard}
	if os.Getenv(LogsEnv) == "1" {
		cfg.logs = os.Stderr
	}
	for _, o := range opts {
		o(&cfg)
	}
	// A private directory for the plugin's sockets (go-plugin's and the
	// transport data plane's), removed when the test ends even if the
	// plugin was killed.
	sockDir, err := os.MkdirTemp("", "skein-pt-")
	if err != nil {
		t.Fatalf("plugintest: socket directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), cfg.env...)
	cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+sockDir)
	for _, kv := range env {
		if kv != "" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	setParentDeathSignal(cmd)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  sdk.GRPCDialOptions(),
		Cmd:              cmd,
		StartTimeout:     30 * time.Second,
		Logger:           testLogger{hclog.New(&hclog.LoggerOptions{Name: "plugintest", Output: cfg.logs, Level: hclog.Info})},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		t.Fatalf("plugintest: start plugin %s: %v", path, err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		client.Kill()
		t.Fatalf("plugintest: dispense plugin %s: %v", path, err)
	}
	rp, err := sdk.Remote(raw, sdk.WithDataPlane(cfg.dataPlane))
	if err != nil {
		client.Kill()
		t.Fatalf("plugintest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rp.Stop(ctx)
		// Graceful: go-plugin asks the plugin to end serving and waits for
		// its exit (SIGKILL only after 2s); the sdk then removes its
		// sockets and exits 0.
		client.Kill()
	})
	if !cfg.describe {
		return rp, client
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rp.Describe(ctx); err != nil {
		t.Fatalf("plugintest: describe %s: %v", path, err)
	}
	if cfg.configure {
		diags, err := rp.Configure(ctx, cfg.config)
		if err != nil {
			t.Fatalf("plugintest: configure %s: %v", path, err)
		}
		for _, d := range diags {
			if d.Severity == sdk.SeverityError {
				t.Fatalf("plugintest: configure %s: %s: %s", path, d.Key, d.Message)
			}
		}
	}
	if cfg.start {
		if err := rp.Start(ctx); err != nil {
			t.Fatalf("plugintest: start %s: %v", path, err)
		}
	}
	return rp, client
}

// StartLinked describes, configures (cfg may be nil) and starts p in this
// process, stopping it when the test ends: the linked-in counterpart of
// StartProcess.
func StartLinked(t testing.TB, p sdk.Plugin, cfg map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Describe(ctx); err != nil {
		t.Fatalf("plugintest: describe: %v", err)
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	diags, err := p.Configure(ctx, cfg)
	if err != nil {
		t.Fatalf("plugintest: configure: %v", err)
	}
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			t.Fatalf("plugintest: configure: %s: %s", d.Key, d.Message)
		}
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("plugintest: start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
}

// testLogger shows a plugin's records at their own level, and what the
// plugin wrote to stderr that is not a record (fmt.Fprintln(os.Stderr),
// a panic) at Info: go-plugin passes those lines on at Debug, below the
// level shown.
type testLogger struct{ hclog.Logger }

func (l testLogger) Named(name string) hclog.Logger { return stderrLogger{l.Logger.Named(name)} }

type stderrLogger struct{ hclog.Logger }

func (l stderrLogger) Debug(msg string, args ...any) {
	if len(args) == 0 {
		l.Logger.Info(msg)
		return
	}
	l.Logger.Debug(msg, args...)
}
