package sdk_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// probe is a plugin that misbehaves on purpose and reports status.
type probe struct{ *plugintest.MemStore }

func (probe) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		ID: "test.probe", Kinds: []sdk.Kind{sdk.KindStore}, Version: "0.0.1",
		Capabilities: []string{"probe.custom"},
		ConfigSchema: []sdk.ConfigKey{{Key: "mode", Type: "string", Default: "calm", Description: "calm or panic"}},
	}, nil
}

func (probe) Configure(_ context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	switch cfg["mode"] {
	case "panic":
		var m map[string]int
		m["boom"]++ // a plugin bug: nil map write
	case "warn":
		return []sdk.Diagnostic{{Severity: sdk.SeverityWarning, Key: "mode", Message: "warn mode is deprecated"}}, nil
	case "fail":
		return nil, errors.New("configure failed")
	}
	return nil, nil
}

func (probe) Start(context.Context) error {
	slog.Info("probe started", "answer", 42, slog.Group("g", "k", "v"))
	return nil
}

func (probe) Status(context.Context) (sdk.Status, error) {
	return sdk.Status{Healthy: true, Message: "fine", Details: map[string]string{"peers": "3"}}, nil
}

// declaresTooMuch says it is a transport but is not one.
type declaresTooMuch struct{ *plugintest.MemStore }

func (declaresTooMuch) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "test.liar", Kinds: []sdk.Kind{sdk.KindStore, sdk.KindTransport}, Version: "1"}, nil
}

// middleEnv makes the test binary act as a host that launches the probe
// plugin without Pdeathsig, prints its pid and waits to be killed.
const middleEnv = "SKEIN_SDKTEST_MIDDLE"

func runMiddle() {
	// go-plugin appends the host's environment to the command's: drop the
	// marker so the plugin does not become a middle process itself.
	_ = os.Unsetenv(middleEnv)
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = []string{plugintest.ChildEnv + "=probe"}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Cmd:              cmd,
		Logger:           hclog.NewNullLogger(),
	})
	if _, err := client.Client(); err != nil {
		fmt.Fprintln(os.Stderr, "middle:", err)
		os.Exit(1)
	}
	fmt.Printf("PID %d\n", client.ReattachConfig().Pid)
	select {}
}

// radio is a transport with a packet profile.
type radio struct{ *plugintest.MemTransport }

func (radio) PacketProfile() sdk.PacketProfile {
	return sdk.PacketProfile{MTU: 244, Bandwidth: 125_000, Latency: 30 * time.Millisecond}
}

func TestMain(m *testing.M) {
	if os.Getenv(middleEnv) == "1" {
		runMiddle()
	}
	plugintest.Main(m, map[string]func() sdk.Plugin{
		"probe":      func() sdk.Plugin { return probe{plugintest.NewMemStore()} },
		"liar":       func() sdk.Plugin { return declaresTooMuch{plugintest.NewMemStore()} },
		"radio":      func() sdk.Plugin { return radio{plugintest.NewMemTransport()} },
		"network":    func() sdk.Plugin { return newMemNetwork() },
		"capnetwork": func() sdk.Plugin { return newCapNetwork() },
	})
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRemoteDescribe(t *testing.T) {
	rp := plugintest.StartProcess(t, "probe", plugintest.WithoutStart())
	d, err := rp.Describe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "test.probe" || d.Version != "0.0.1" || !slices.Equal(d.Kinds, []sdk.Kind{sdk.KindStore}) {
		t.Fatalf("description = %+v", d)
	}
	for _, c := range []string{"probe.custom", sdk.CapStatus} {
		if !slices.Contains(d.Capabilities, c) {
			t.Errorf("capabilities %v lack %q", d.Capabilities, c)
		}
	}
	if slices.Contains(d.Capabilities, sdk.CapTransportSocket) {
		t.Errorf("a store-only plugin offers %q", sdk.CapTransportSocket)
	}
	if len(d.ConfigSchema) != 1 || d.ConfigSchema[0] != (sdk.ConfigKey{Key: "mode", Type: "string", Default: "calm", Description: "calm or panic"}) {
		t.Fatalf("config schema = %+v", d.ConfigSchema)
	}
	if _, ok := rp.Transport(); ok {
		t.Fatal("Transport() ok for a plugin that does not declare it")
	}
	if _, ok := rp.Discovery(); ok {
		t.Fatal("Discovery() ok for a plugin that does not declare it")
	}
	if _, ok := rp.Store(); !ok {
		t.Fatal("Store() not ok for a store plugin")
	}
}

func TestRemoteConfigure(t *testing.T) {
	rp := plugintest.StartProcess(t, "probe", plugintest.WithoutStart())
	cases := []struct {
		name     string
		cfg      map[string]any
		wantSev  sdk.Severity // 0: no diagnostics
		wantErr  bool
		wantText string
	}{
		{"calm", map[string]any{"mode": "calm"}, 0, false, ""},
		{"nil config", nil, 0, false, ""},
		{"warning", map[string]any{"mode": "warn"}, sdk.SeverityWarning, false, "deprecated"},
		{"panic becomes a diagnostic", map[string]any{"mode": "panic"}, sdk.SeverityError, false, "plugin failed on this config"},
		{"error", map[string]any{"mode": "fail"}, 0, true, "configure failed"},
		{"unencodable", map[string]any{"mode": make(chan int)}, 0, true, "encode config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			diags, err := rp.Configure(ctxT(t), tc.cfg)
			if tc.wantErr {
				if err == nil || !contains(err.Error(), tc.wantText) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantSev == 0 {
				if len(diags) != 0 {
					t.Fatalf("diagnostics = %+v, want none", diags)
				}
				return
			}
			if len(diags) != 1 || diags[0].Severity != tc.wantSev || !contains(diags[0].Message, tc.wantText) {
				t.Fatalf("diagnostics = %+v, want one of severity %d mentioning %q", diags, tc.wantSev, tc.wantText)
			}
		})
	}
	// The plugin survived all of that.
	if _, err := rp.Status(ctxT(t)); err != nil {
		t.Fatalf("status after bad configs: %v", err)
	}
}

func contains(s, sub string) bool {
	return sub == "" || len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestRemoteEventsCarryLogsAndStatus(t *testing.T) {
	rp := plugintest.StartProcess(t, "probe", plugintest.WithoutStart())
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	events, err := rp.Events(ctx, sdk.EventOptions{Logs: true, MinLevel: slog.LevelInfo})
	if err != nil {
		t.Fatal(err)
	}
	// The first event is the status, sent at once; once we have it the
	// subscription is in place and Start's log line must arrive.
	first := <-events
	if first.Kind != sdk.EventStatus || !first.Status.Healthy || first.Status.Details["peers"] != "3" {
		t.Fatalf("first event = %+v, want the status", first)
	}
	if err := rp.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Kind == sdk.EventLog && ev.Log.Message == "probe started" {
			if ev.Log.Attrs["answer"] != "42" || ev.Log.Attrs["g.k"] != "v" || ev.Log.Level != slog.LevelInfo {
				t.Fatalf("log record = %+v", ev.Log)
			}
			return
		}
	}
	t.Fatal("event stream ended without the log record")
}

func TestRemoteStatus(t *testing.T) {
	rp := plugintest.StartProcess(t, "probe")
	st, err := rp.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.Message != "fine" || st.Details["peers"] != "3" {
		t.Fatalf("status = %+v", st)
	}
}

func TestDescribeRejectsUnimplementedKind(t *testing.T) {
	rp := plugintest.StartProcess(t, "liar", plugintest.WithoutDescribe())
	_, err := rp.Describe(ctxT(t))
	if err == nil || !contains(err.Error(), "does not implement") {
		t.Fatalf("describe = %v, want an error naming the missing kind", err)
	}
}

func TestCallsAfterPluginDiesFailUnavailable(t *testing.T) {
	rp, client := plugintest.StartProcessWithClient(t, "probe")
	s, _ := rp.Store()
	proc, err := os.FindProcess(client.ReattachConfig().Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rp.Done():
	case <-ctxT(t).Done():
		t.Fatal("Done not closed after the plugin was killed")
	}
	_, err = s.Get(ctxT(t), []byte("k"))
	if !errors.Is(err, sdk.ErrPluginUnavailable) {
		t.Fatalf("get after the plugin died: err = %v, want sdk.ErrPluginUnavailable", err)
	}
}

func TestPluginExitsWhenItsParentDies(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	middle := exec.Command(exe)
	middle.Env = append(os.Environ(), middleEnv+"=1")
	out, err := middle.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := middle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = middle.Process.Kill(); _ = middle.Wait() }()
	var pid int
	if _, err := fmt.Fscanf(bufio.NewReader(out), "PID %d\n", &pid); err != nil {
		t.Fatalf("read plugin pid from the middle process: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("plugin %d not running", pid)
	}
	_ = middle.Process.Kill()
	_ = middle.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("plugin %d still running 20s after its parent died", pid)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// alive reports whether pid runs (a zombie that nobody reaps counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func TestDebugModeReattach(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), plugintest.ChildEnv+"=probe", sdk.DebugEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stderr)
	var info string
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), sdk.ReattachEnv+"="); ok {
			info = rest
			break
		}
	}
	if info == "" {
		t.Fatalf("debug-mode plugin printed no %s line", sdk.ReattachEnv)
	}
	go func() { // keep draining so the plugin never blocks on stderr
		for lines.Scan() {
		}
	}()
	rc, err := sdk.ParseReattach(info)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Pid != cmd.Process.Pid {
		t.Fatalf("reattach pid %d, plugin pid %d", rc.Pid, cmd.Process.Pid)
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.HostPluginSets()[sdk.ProtocolVersion],
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Reattach:         rc,
		Logger:           hclog.NewNullLogger(),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := sdk.Remote(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := rp.Describe(ctxT(t))
	if err != nil || d.ID != "test.probe" {
		t.Fatalf("describe through reattach = %+v, %v", d, err)
	}
	// Interrupting a debug-mode plugin ends it cleanly.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("debug-mode plugin exit: %v", err)
		}
	case <-ctxT(t).Done():
		t.Fatal("debug-mode plugin did not exit on interrupt")
	}
}

func TestPacketProfileCrossesTheWire(t *testing.T) {
	rp := plugintest.StartProcess(t, "radio")
	d, _ := rp.Description()
	if !slices.Contains(d.Capabilities, sdk.CapTransportPacket) {
		t.Fatalf("capabilities %v lack %q", d.Capabilities, sdk.CapTransportPacket)
	}
	tr, ok := rp.Transport()
	if !ok {
		t.Fatal("no transport")
	}
	pt, ok := tr.(sdk.PacketTransport)
	if !ok {
		t.Fatal("remote transport is not a PacketTransport")
	}
	if got, want := pt.PacketProfile(), (radio{}).PacketProfile(); got != want {
		t.Fatalf("packet profile = %+v, want %+v", got, want)
	}
	if tr.Protocol() != "x-memory" {
		t.Fatalf("protocol = %q", tr.Protocol())
	}
	// A plugin that does not declare the transport kind has none.
	plain := plugintest.StartProcess(t, "probe")
	if _, ok := plain.Transport(); ok {
		t.Fatal("a store plugin has a transport")
	}
}

func TestRemoteRejectsForeignValue(t *testing.T) {
	if _, err := sdk.Remote("not a client"); !errors.Is(err, sdk.ErrNotPlugin) {
		t.Fatalf("Remote(string) err = %v, want sdk.ErrNotPlugin", err)
	}
	if _, err := sdk.Remote(nil); !errors.Is(err, sdk.ErrNotPlugin) {
		t.Fatalf("Remote(nil) err = %v, want sdk.ErrNotPlugin", err)
	}
}
