package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// storeModes runs f against a store plugin linked in and out of process:
// the same Host API either way.
func storeModes(t *testing.T, f func(t *testing.T, h *Host, p *Plugin)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		spec func(t *testing.T) Spec
	}{
		{"linked", func(t *testing.T) Spec { return Spec{Name: "mem", ID: memStoreID, Mode: ModeLinked} }},
		{"process", func(t *testing.T) Spec { return processSpec(t, "mem", "memstore") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestHost(t)
			f(t, h, launch(t, h, tc.spec(t)))
		})
	}
}

func TestStoreThroughHost(t *testing.T) {
	storeModes(t, func(t *testing.T, h *Host, p *Plugin) {
		ctx := ctxTimeout(t, 20*time.Second)
		if got := p.Description().ID; got != memStoreID {
			t.Fatalf("Description().ID = %q, want %q", got, memStoreID)
		}
		st, err := p.Store()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Transport(); !errors.Is(err, ErrKindNotServed) {
			t.Fatalf("Transport() err = %v, want ErrKindNotServed", err)
		}
		if err := st.Put(ctx, []byte("a/1"), []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := st.Batch(ctx, []sdk.Op{{Key: []byte("a/2"), Value: []byte("two")}, {Key: []byte("b/1"), Value: []byte("x")}}, true); err != nil {
			t.Fatal(err)
		}
		if v, err := st.Get(ctx, []byte("a/1")); err != nil || string(v) != "one" {
			t.Fatalf("Get a/1 = %q, %v", v, err)
		}
		if _, err := st.Get(ctx, []byte("nope")); !errors.Is(err, sdk.ErrNotFound) {
			t.Fatalf("Get nope err = %v, want sdk.ErrNotFound", err)
		}
		if ok, err := st.Has(ctx, []byte("b/1")); err != nil || !ok {
			t.Fatalf("Has b/1 = %v, %v", ok, err)
		}
		var keys []string
		for kv, err := range st.Query(ctx, sdk.Query{Prefix: []byte("a/")}) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, string(kv.Key))
		}
		if strings.Join(keys, ",") != "a/1,a/2" {
			t.Fatalf("Query a/ = %v", keys)
		}
		if err := st.Delete(ctx, []byte("a/1")); err != nil {
			t.Fatal(err)
		}
		if ok, _ := st.Has(ctx, []byte("a/1")); ok {
			t.Fatal("a/1 still there after Delete")
		}
		if err := st.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := p.Status(ctx); err != nil || !st.Healthy {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		if _, err := st.Get(ctx, []byte("a/2")); !errors.Is(err, ErrPluginStopped) || !strings.Contains(err.Error(), "plugin mem") {
			t.Fatalf("Get after Stop err = %v, want ErrPluginStopped naming the plugin", err)
		}
	})
}

func TestDiscoveryThroughHost(t *testing.T) {
	storeModes(t, func(t *testing.T, h *Host, p *Plugin) {
		d, err := p.Discovery()
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxTimeout(t, 20*time.Second)
		found, err := d.FindPeers(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		advertised := make(chan error, 1)
		go func() {
			advertised <- d.Advertise(actx, "ns", sdk.PeerInfo{ID: "peer-1", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
		}()
		select {
		case pi, ok := <-found:
			if !ok || pi.ID != "peer-1" || len(pi.Addrs) != 1 {
				t.Fatalf("FindPeers gave %+v (open %v), want peer-1", pi, ok)
			}
		case <-ctx.Done():
			t.Fatal("FindPeers found nothing")
		}
		cancel()
		if err := <-advertised; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Advertise: %v", err)
		}
	})
}

func TestLaunchFailures(t *testing.T) {
	path, sum := testBinary(t)
	dir := t.TempDir()
	junkScript := filepath.Join(dir, "junk.sh")
	if err := os.WriteFile(junkScript, []byte("#!/bin/sh\necho 'this is not a plugin'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	junkSum, err := FileSHA256(junkScript)
	if err != nil {
		t.Fatal(err)
	}
	trueSum, err := FileSHA256("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    Spec
		wantErr error
		wantMsg []string
	}{
		{
			name:    "checksum mismatch",
			spec:    Spec{Name: "store.pebble", Command: path, SHA256: strings.Repeat("ab", 32), Env: map[string]string{testPluginEnv: "memstore"}},
			wantErr: ErrChecksumMismatch,
			wantMsg: []string{"expected " + strings.Repeat("ab", 32), "got " + sum, "update plugins.store.pebble.sha256 in config"},
		},
		{
			name:    "missing binary",
			spec:    Spec{Name: "gone", Command: filepath.Join(dir, "nope"), SHA256: sum},
			wantMsg: []string{"hash binary"},
		},
		{
			name:    "not a plugin: exits at once",
			spec:    Spec{Name: "truebin", Command: "/bin/true", SHA256: trueSum},
			wantErr: ErrHandshake,
		},
		{
			name:    "not a plugin: prints junk",
			spec:    Spec{Name: "junk", Command: junkScript, SHA256: junkSum},
			wantErr: ErrHandshake,
			wantMsg: []string{"this is not a plugin"},
		},
		{
			name:    "prints to stdout before the handshake",
			spec:    Spec{Name: "chatty", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "junk-stdout"}},
			wantErr: ErrHandshake,
			wantMsg: []string{"hello from a chatty plugin", "must not write to stdout"},
		},
		{
			name:    "silent: no handshake within StartTimeout",
			spec:    Spec{Name: "mute", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "silent"}, StartTimeout: 300 * time.Millisecond},
			wantErr: ErrHandshake,
			wantMsg: []string{"timeout while waiting for plugin to start"},
		},
		{
			name:    "wrong magic cookie",
			spec:    Spec{Name: "foreign", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "wrong-cookie"}},
			wantErr: ErrHandshake,
			wantMsg: []string{"exit status 1", "This binary is a plugin"},
		},
		{
			name:    "wrong protocol version",
			spec:    Spec{Name: "future", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "wrong-version"}},
			wantErr: ErrHandshake,
			wantMsg: []string{"99"},
		},
		{
			name:    "config rejected",
			spec:    Spec{Name: "mem", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "memstore"}, Config: map[string]any{"colour": "blue"}},
			wantErr: ErrConfigRejected,
			wantMsg: []string{"plugins.mem.config.colour: unknown key"},
		},
		{
			name:    "wrong plugin id",
			spec:    Spec{Name: "mem", ID: "store.pebble", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "memstore"}},
			wantMsg: []string{`describes itself as "test.memstore"`},
		},
		{
			name:    "linked: unknown id",
			spec:    Spec{Name: "ghost", ID: "store.ghost", Mode: ModeLinked},
			wantErr: ErrUnknownPlugin,
		},
		{
			name:    "no sha256",
			spec:    Spec{Name: "nosum", Command: path},
			wantErr: ErrInvalidSpec,
			wantMsg: []string{"plugins.nosum.sha256"},
		},
		{
			name:    "bad sha256",
			spec:    Spec{Name: "badsum", Command: path, SHA256: "xyz"},
			wantErr: ErrInvalidSpec,
		},
		{
			name:    "reattach: junk",
			spec:    Spec{Name: "dbg", Mode: ModeReattach, Reattach: "{not json"},
			wantMsg: []string{"reattach"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newTestHost(t)
			if tc.spec.StartTimeout == 0 {
				tc.spec.StartTimeout = 10 * time.Second
			}
			p, err := h.Launch(ctxTimeout(t, 30*time.Second), tc.spec)
			if err == nil {
				t.Fatalf("Launch succeeded (state %s), want an error", p.State())
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), "plugin "+tc.spec.Name) {
				t.Errorf("err = %q does not name the plugin %s", err, tc.spec.Name)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %q, want it to contain %q", err, m)
				}
			}
			t.Logf("error: %v", err)
			if _, ok := h.Plugin(tc.spec.Name); ok {
				t.Error("a plugin that failed to start is listed by the host")
			}
		})
	}
}

func TestEnvironmentAllowList(t *testing.T) {
	t.Setenv("SKEIN_TEST_SECRET", "hunter2")
	t.Setenv("SKEIN_TEST_PASSED", "passed-through")
	h, _ := newTestHost(t)
	spec := processSpec(t, "env", "memstore")
	spec.PassEnv = []string{"SKEIN_TEST_PASSED", "SKEIN_TEST_UNSET"}
	spec.Env["SKEIN_TEST_SET"] = "set-by-config"
	p := launch(t, h, spec)
	st, err := p.Store()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	tests := []struct {
		name    string
		present bool
		value   string
	}{
		{"SKEIN_TEST_SECRET", false, ""},
		{"SKEIN_TEST_UNSET", false, ""},
		{"SKEIN_TEST_PASSED", true, "passed-through"},
		{"SKEIN_TEST_SET", true, "set-by-config"},
		{"PATH", os.Getenv("PATH") != "", os.Getenv("PATH")},
		{sdk.MagicCookieKey, true, sdk.MagicCookieValue},
		{"HOME", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := st.Get(ctx, []byte("env:"+tc.name))
			switch {
			case !tc.present && !errors.Is(err, sdk.ErrNotFound):
				t.Fatalf("plugin sees %s=%q (err %v); it must not", tc.name, v, err)
			case tc.present && (err != nil || string(v) != tc.value):
				t.Fatalf("plugin sees %s=%q, %v; want %q", tc.name, v, err, tc.value)
			}
		})
	}
}

func TestPluginLogsIntoSlog(t *testing.T) {
	h, rec := newTestHost(t)
	launch(t, h, processSpec(t, "logger", "memstore"))
	r := rec.wait(t, 10*time.Second, "memstore started", func(r recorded) bool {
		return r.msg == "memstore started"
	})
	if r.attrs["plugin"] != "logger" {
		t.Fatalf("plugin log line has plugin=%q, want logger (attrs %v)", r.attrs["plugin"], r.attrs)
	}
}

// TestPluginLogRecords: a plugin's slog record reaches the node's log at
// its level with its fields lifted into the node's record (not as JSON
// inside msg=), and the line parses in both of the node's formats.
func TestPluginLogRecords(t *testing.T) {
	for _, tc := range []struct{ format, plugin, msg string }{
		{"text", "memstore", "memstore warning"},
		{"json", "memstore", "memstore warning"},
		// A logger kept from before sdk.ServeFunc set up logging.
		{"text", "capturer", "captured logger warning"},
		{"json", "capturer", "captured logger warning"},
	} {
		format := tc.format
		t.Run(tc.format+" "+tc.plugin, func(t *testing.T) {
			var buf lockedBuffer
			var handler slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				handler = slog.NewJSONHandler(&buf, nil)
			}
			rec := newLogRecorder()
			h := New(slog.New(teeHandlers{handler, rec}))
			t.Cleanup(func() { _ = h.Stop(ctxTimeout(t, 20*time.Second)) })
			launch(t, h, processSpec(t, "logger", tc.plugin))
			r := rec.wait(t, 10*time.Second, tc.msg, func(r recorded) bool { return r.msg == tc.msg })
			if r.level != slog.LevelWarn {
				t.Errorf("level = %s, want WARN", r.level)
			}
			if r.attrs["free"] != "1%" || r.attrs["plugin"] != "logger" {
				t.Errorf("attrs = %v, want free=1%% and plugin=logger", r.attrs)
			}
			if _, ok := r.attrs["timestamp"]; ok {
				t.Errorf("go-plugin's timestamp field kept: %v", r.attrs)
			}
			line := buf.lineWith(t, tc.msg)
			if strings.Contains(line, "@message") || strings.Contains(line, `\"`) {
				t.Errorf("the plugin's record is nested in the node's line: %s", line)
			}
			switch format {
			case "text":
				for _, want := range []string{"level=WARN", `msg="` + tc.msg + `"`, "plugin=logger", "free=1%", "disk.dev=sda", "disk.ok=false"} {
					if !strings.Contains(line, want) {
						t.Errorf("text line lacks %s: %s", want, line)
					}
				}
			case "json":
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("json line does not parse: %v: %s", err, line)
				}
				disk, _ := m["disk"].(map[string]any)
				if m["level"] != "WARN" || m["msg"] != tc.msg || m["free"] != "1%" || m["plugin"] != "logger" || disk["dev"] != "sda" {
					t.Errorf("json record = %v", m)
				}
			}
		})
	}
}

// TestKillMidOperation SIGKILLs a plugin while calls are in flight: the
// non-idempotent one fails with ErrPluginCrashed naming the plugin, the
// idempotent one is retried on the restarted plugin, and later calls work.
func TestKillMidOperation(t *testing.T) {
	h, rec := newTestHost(t)
	spec := processSpec(t, "crashy", "memstore")
	spec.Config = map[string]any{"hang_dir": t.TempDir()}
	p := launch(t, h, spec)
	st, err := p.Store()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	if err := st.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}

	// The first value fills the sdk's first query chunk (1 MiB), so that it
	// is sent before the plugin hangs.
	if err := st.Batch(ctx, []sdk.Op{{Key: []byte("hang/1"), Value: make([]byte, 1<<20)}, {Key: []byte("hang/2"), Value: []byte("2")}}, true); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var syncErr, getErr, queryErr error
	var queried []string
	wg.Add(3)
	go func() { defer wg.Done(); syncErr = st.Sync(ctx) }()
	go func() { defer wg.Done(); _, getErr = st.Get(ctx, []byte("hang")) }()
	firstPair := make(chan struct{})
	go func() {
		defer wg.Done()
		for kv, err := range st.Query(ctx, sdk.Query{Prefix: []byte("hang/")}) {
			if err != nil {
				queryErr = err
				return
			}
			if queried = append(queried, string(kv.Key)); len(queried) == 1 {
				close(firstPair)
			}
		}
	}()
	for _, op := range []string{"HANG sync", "HANG get", "HANG query"} {
		rec.wait(t, 10*time.Second, op, func(r recorded) bool { return r.msg == op })
	}
	select {
	case <-firstPair:
	case <-ctx.Done():
		t.Fatal("the query's first pair never reached the host")
	}
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	if !errors.Is(syncErr, ErrPluginCrashed) || !strings.Contains(syncErr.Error(), "plugin crashy") {
		t.Errorf("in-flight Sync err = %v, want ErrPluginCrashed naming the plugin", syncErr)
	}
	// A query that had yielded a pair is not retried: it ends with the crash.
	if !errors.Is(queryErr, ErrPluginCrashed) || strings.Join(queried, ",") != "hang/1" {
		t.Errorf("in-flight Query gave %v then err %v, want hang/1 then ErrPluginCrashed", queried, queryErr)
	}
	// The retried Get ran on the new, empty instance.
	if !errors.Is(getErr, sdk.ErrNotFound) {
		t.Errorf("in-flight Get err = %v, want it retried (sdk.ErrNotFound from the restarted plugin)", getErr)
	}
	if err := st.Put(ctx, []byte("k2"), []byte("v2")); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	if v, err := st.Get(ctx, []byte("k2")); err != nil || !bytes.Equal(v, []byte("v2")) {
		t.Fatalf("Get after restart = %q, %v", v, err)
	}
	// The restarted plugin was configured with the same config and started.
	if v, err := st.Get(ctx, []byte("config:hang_dir")); err != nil || string(v) != spec.Config["hang_dir"] {
		t.Errorf("restarted plugin's hang_dir = %q, %v; want %q", v, err, spec.Config["hang_dir"])
	}
	if v, err := st.Get(ctx, []byte("state:started")); err != nil || string(v) != "true" {
		t.Errorf("restarted plugin started = %q, %v", v, err)
	}
	if got := p.Restarts(); got != 1 {
		t.Errorf("Restarts() = %d, want 1", got)
	}
	if p.PID() == pid || p.PID() == 0 {
		t.Errorf("PID after restart = %d, old %d", p.PID(), pid)
	}
	// "k" was acknowledged without sync by the crashed instance: a Sync
	// must not vouch for it.
	if err := st.Sync(ctx); !errors.Is(err, ErrPluginCrashed) || !strings.Contains(err.Error(), "may be lost") {
		t.Errorf("first Sync after the crash err = %v, want ErrPluginCrashed (writes may be lost)", err)
	}
	if err := st.Sync(ctx); err != nil {
		t.Errorf("second Sync after the crash: %v", err)
	}
	rec.wait(t, 5*time.Second, "crash logged", func(r recorded) bool {
		return r.msg == "plugin crashed" && r.attrs["plugin"] == "crashy"
	})
}

// TestRestartBackoffThenStop: a crashed plugin waiting out a long backoff
// is stopped at once, and calls then fail with ErrPluginStopped.
func TestRestartBackoffThenStop(t *testing.T) {
	h, _ := newTestHost(t)
	spec := processSpec(t, "slow-restart", "memstore")
	spec.Restart = RestartPolicy{Base: time.Hour}
	p := launch(t, h, spec)
	st, _ := p.Store()
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, 10*time.Second, "restarting", func() bool { return p.state == StateRestarting })

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := st.Get(short, []byte("k")); !errors.Is(err, ErrPluginRestarting) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while restarting err = %v, want ErrPluginRestarting and DeadlineExceeded", err)
	}
	if err := p.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Stop while restarting: %v", err)
	}
	if _, err := st.Get(ctxTimeout(t, time.Second), []byte("k")); !errors.Is(err, ErrPluginStopped) {
		t.Fatalf("Get after Stop err = %v, want ErrPluginStopped", err)
	}
}

func TestRestartDisabled(t *testing.T) {
	h, _ := newTestHost(t)
	spec := processSpec(t, "once", "memstore")
	spec.Restart.Disabled = true
	p := launch(t, h, spec)
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, 10*time.Second, "stopped", func() bool { return p.state == StateStopped })
	st, _ := p.Store()
	if st != nil {
		t.Fatal("Store() of a stopped plugin returned a store")
	}
	if err := p.WaitRunning(ctxTimeout(t, time.Second)); !errors.Is(err, ErrPluginStopped) || !strings.Contains(err.Error(), "crashed") {
		t.Fatalf("WaitRunning err = %v, want ErrPluginStopped with the crash", err)
	}
}

// TestStopKillsPluginIgnoringStop: the Stop RPC hangs, the deadline passes,
// the process is killed.
func TestStopKillsPluginIgnoringStop(t *testing.T) {
	h, _ := newTestHost(t)
	spec := processSpec(t, "stubborn", "memstore")
	spec.Config = map[string]any{"ignore_stop": true}
	spec.StopTimeout = 200 * time.Millisecond
	p := launch(t, h, spec)
	pid := p.PID()
	err := p.Stop(ctxTimeout(t, 20*time.Second))
	if !errors.Is(err, ErrStopTimeout) || !strings.Contains(err.Error(), "plugin stubborn") {
		t.Fatalf("Stop err = %v, want ErrStopTimeout naming the plugin", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err2 := p.Stop(ctxTimeout(t, time.Second)); !errors.Is(err2, ErrStopTimeout) {
		t.Fatalf("second Stop err = %v, want the first Stop's result", err2)
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	tests := []struct {
		name string
		id   string
		f    Factory
	}{
		{"duplicate", memStoreID, func() sdk.Plugin { return newMemStore() }},
		{"empty id", "", func() sdk.Plugin { return newMemStore() }},
		{"nil factory", "test.nil", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			Register(tc.id, tc.f)
		})
	}
}

func TestLaunchDuplicateName(t *testing.T) {
	h, _ := newTestHost(t)
	launch(t, h, Spec{Name: "mem", ID: memStoreID, Mode: ModeLinked})
	if _, err := h.Launch(ctxTimeout(t, time.Second), Spec{Name: "mem", ID: memStoreID, Mode: ModeLinked}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("second Launch err = %v, want ErrInvalidSpec", err)
	}
}

// TestCrashLoop: a plugin that dies in Start on every restart is retried
// with backoff and logged, and Stop ends the loop.
func TestCrashLoop(t *testing.T) {
	h, rec := newTestHost(t)
	spec := processSpec(t, "loop", "memstore")
	spec.Config = map[string]any{"crash_dir": t.TempDir()}
	p := launch(t, h, spec)
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, attempt := range []string{"1", "2", "3"} {
		r := rec.wait(t, 20*time.Second, "restart failed, attempt "+attempt, func(r recorded) bool {
			return r.msg == "plugin restart failed" && r.attrs["attempt"] == attempt
		})
		if !strings.Contains(r.attrs["error"], "plugin loop: start: plugin crashed") {
			t.Fatalf("restart error = %q, want a crash in start naming the plugin", r.attrs["error"])
		}
	}
	if err := p.LastError(); !errors.Is(err, ErrPluginCrashed) {
		t.Fatalf("LastError = %v, want ErrPluginCrashed", err)
	}
	if err := p.Stop(ctxTimeout(t, 20*time.Second)); err != nil {
		t.Fatalf("Stop during a crash loop: %v", err)
	}
	if p.State() != StateStopped {
		t.Fatalf("state after Stop = %s", p.State())
	}
}

// TestStopLinkedIgnoringStop: a linked-in plugin cannot be killed; Stop
// still returns at its deadline with an error naming the plugin.
func TestStopLinkedIgnoringStop(t *testing.T) {
	h, _ := newTestHost(t)
	p := launch(t, h, Spec{Name: "stubborn-linked", ID: memStoreID, Mode: ModeLinked,
		Config: map[string]any{"ignore_stop": true}, StopTimeout: 100 * time.Millisecond})
	err := p.Stop(ctxTimeout(t, 20*time.Second))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "plugin stubborn-linked") {
		t.Fatalf("Stop err = %v, want DeadlineExceeded naming the plugin", err)
	}
	if p.State() != StateStopped {
		t.Fatalf("state = %s, want stopped", p.State())
	}
}
