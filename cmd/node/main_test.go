package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

// skeinBin is the skein binary built once for every test.
var skeinBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skein-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	skeinBin = filepath.Join(dir, "skein")
	build := exec.Command("go", "build", "-o", skeinBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build skein: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished skein run.
type result struct {
	stdout, stderr string
	code           int
}

// testEnv is a clean environment: a private HOME and TMPDIR, no SKEIN_*
// variables from the machine running the tests.
func testEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	home := t.TempDir()
	return append([]string{"HOME=" + home, "TMPDIR=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, extra...)
}

// skein runs the binary with args and env and waits (at most a minute).
func skein(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skeinBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("skein %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionJSON(t *testing.T) {
	r := skein(t, testEnv(t), "version", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, r.stdout)
	}
	if v.Version == "" || v.PluginProtocol != 1 || !strings.HasPrefix(v.GoVersion, "go") {
		t.Errorf("version = %+v", v)
	}
	if !slices.Contains(v.BuiltinPlugins, "store.pebble") || !slices.Contains(v.BuiltinPlugins, "store.memory") {
		t.Errorf("builtin_plugins = %v, want store.pebble and store.memory", v.BuiltinPlugins)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "node:\n  data_dir: data\n  log: {level: debug}\n")
	unknown := writeFile(t, dir, "unknown.yaml", "node:\n  data_dirr: data\n")
	badSum := writeFile(t, dir, "badsum.yaml", "plugins:\n  store:\n    path: /bin/sh\n    sha256: xyz\n")
	pluginCfg := writeFile(t, dir, "plugincfg.yaml", "plugins:\n  store:\n    config:\n      path: /tmp/x\n      cache_size: lots\n")
	notYAML := writeFile(t, dir, "notyaml.yaml", "node: [\n")
	// A problem of the node's and one in a plugin's own config: both at once.
	both := writeFile(t, dir, "both.yaml", "node:\n  log: {level: loud}\nplugins:\n  store:\n    config:\n      path: /tmp/x\n      cache_size: lots\n")

	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "good file", args: []string{"--config", good}, wantCode: 0,
			wantStdout: []string{"config ok: " + good, "data_dir  " + filepath.Join(dir, "data"), "plugin    store: store.pebble, process, built in"}},
		{name: "defaults only", wantCode: 0, wantStdout: []string{"config ok: embedded defaults"}},
		{name: "unknown key names file and key", args: []string{"--config", unknown}, wantCode: 1,
			wantStderr: []string{"config " + unknown + `: node.data_dirr: unknown key; did you mean "data_dir"?`}},
		{name: "bad sha256", args: []string{"--config", badSum}, wantCode: 1,
			wantStderr: []string{"config " + badSum + ": plugins.store.sha256: not a sha256 hex digest"}},
		{name: "plugin Configure diagnostics", args: []string{"--config", pluginCfg}, wantCode: 1,
			wantStderr: []string{"config " + pluginCfg + ": plugins.store.config.cache_size: must be a size"}},
		{name: "node and plugin problems at once", args: []string{"--config", both}, wantCode: 1,
			wantStderr: []string{"invalid configuration (2 problems)", "config " + both + `: node.log.level: "loud" is not a level`,
				"config " + both + ": plugins.store.config.cache_size: must be a size"}},
		{name: "environment wrong type", env: []string{"SKEIN_PLUGINS__STORE__ENABLED=perhaps"}, wantCode: 1,
			wantStderr: []string{"config env SKEIN_PLUGINS__STORE__ENABLED: plugins.store.enabled: expected true or false"}},
		{name: "flag wrong value", args: []string{"--log-format", "xml"}, wantCode: 1,
			wantStderr: []string{`config flag --log-format: node.log.format: "xml" is not a format`}},
		{name: "config file from SKEIN_CONFIG", env: []string{"SKEIN_CONFIG=" + unknown}, wantCode: 1,
			wantStderr: []string{"config " + unknown + ": node.data_dirr"}},
		{name: "not yaml", args: []string{"--config", notYAML}, wantCode: 1,
			wantStderr: []string{"config " + notYAML + ": not valid YAML"}},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "absent.yaml")}, wantCode: 1,
			wantStderr: []string{"absent.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := skein(t, testEnv(t, tc.env...), append([]string{"config", "check"}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

func TestConfigCheckJSON(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "api:\n  tcp: localhost\n  token_file: t\nnode:\n  log: {format: xml}\n")
	r := skein(t, testEnv(t), "config", "check", "--json", "--config", bad)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	var res checkResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	want := []string{
		"config " + bad + `: api.tcp: "localhost" is not a host:port address: address localhost: missing port in address`,
		"config " + bad + `: node.log.format: "xml" is not a format: use text or json`,
	}
	if res.OK || !slices.Equal(res.Problems, want) {
		t.Errorf("result = %+v\nwant problems %q", res, want)
	}
}

func TestConfigDefaultsMatchesExample(t *testing.T) {
	r := skein(t, testEnv(t), "config", "defaults")
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || r.stdout != string(example) {
		t.Errorf("config defaults (exit %d) differs from config.example.yaml", r.code)
	}
}

func TestInit(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "node")
	env := testEnv(t)
	r := skein(t, env, "init", "--json", "--data-dir", dataDir)
	if r.code != 0 {
		t.Fatalf("init: exit %d: %s", r.code, r.stderr)
	}
	var res initResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("init --json: %v\n%s", err, r.stdout)
	}
	if res.DataDir != dataDir || len(res.AccountKey) != 64 || len(res.DeviceKey) != 64 || res.AccountKey == res.DeviceKey {
		t.Errorf("init result = %+v", res)
	}
	modes := map[string]os.FileMode{
		dataDir:                                             0o700,
		filepath.Join(dataDir, "skein.yaml"):                0o600,
		filepath.Join(dataDir, "keystore"):                  0o700,
		filepath.Join(dataDir, "keystore", "keystore.meta"): 0o600,
		filepath.Join(dataDir, "keystore", "keystore.key"):  0o600,
	}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	secrets, _ := filepath.Glob(filepath.Join(dataDir, "keystore", "*.secret"))
	if len(secrets) != 3 {
		t.Errorf("keystore holds %d secrets, want 3 (account, device key, certificate)", len(secrets))
	}
	// No secret in the clear on disk: the account seed is sealed.
	for _, s := range secrets {
		b, _ := os.ReadFile(s)
		if bytes.Contains(b, []byte(res.AccountKey)) {
			t.Errorf("%s holds the account key in hex", s)
		}
	}

	r = skein(t, env, "init", "--data-dir", dataDir)
	if r.code != 1 || !strings.Contains(r.stderr, "already initialised") {
		t.Errorf("second init: exit %d, stderr %q; want 1 and 'already initialised'", r.code, r.stderr)
	}
	// The data directory's config is found from --data-dir alone.
	r = skein(t, env, "config", "check", "--data-dir", dataDir)
	if r.code != 0 || !strings.Contains(r.stdout, "config ok: "+filepath.Join(dataDir, "skein.yaml")) ||
		!strings.Contains(r.stdout, "data_dir  "+dataDir) {
		t.Errorf("config check after init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestPluginsVerify(t *testing.T) {
	dir := t.TempDir()
	// A binary that is not a plugin, with the right checksum.
	notPlugin := filepath.Join(dir, "not-a-plugin")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := pluginhost.FileSHA256(notPlugin)
	if err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, dir, "good.yaml", "node:\n  data_dir: data\n")
	bad := writeFile(t, dir, "bad.yaml", "node:\n  data_dir: data2\nplugins:\n  fake:\n    id: transport.fake\n    path: "+notPlugin+"\n    sha256: \""+sum+"\"\n")
	mismatch := writeFile(t, dir, "mismatch.yaml", "node:\n  data_dir: data3\nplugins:\n  fake:\n    id: transport.fake\n    path: "+notPlugin+"\n    sha256: \""+strings.Repeat("ab", 32)+"\"\n")

	tests := []struct {
		name     string
		config   string
		wantCode int
		check    func(t *testing.T, rs []verifyResult)
	}{
		{name: "store out of process", config: good, wantCode: 0, check: func(t *testing.T, rs []verifyResult) {
			if len(rs) != 1 {
				t.Fatalf("results = %+v", rs)
			}
			r := rs[0]
			if !r.OK || r.Name != "store" || r.ID != "store.pebble" || r.Mode != "process" || r.PID <= 0 || !r.Healthy || r.Version == "" || r.StartTime <= 0 {
				t.Errorf("store = %+v, want ok, process, a pid, healthy", r)
			}
		}},
		{name: "not a plugin", config: bad, wantCode: 1, check: func(t *testing.T, rs []verifyResult) {
			i := slices.IndexFunc(rs, func(r verifyResult) bool { return r.Name == "fake" })
			if i < 0 || rs[i].OK || !strings.Contains(rs[i].Error, "fake") || !strings.Contains(rs[i].Error, "handshake") {
				t.Errorf("results = %+v, want fake failing the handshake with its name", rs)
			}
			if j := slices.IndexFunc(rs, func(r verifyResult) bool { return r.Name == "store" }); j < 0 || !rs[j].OK {
				t.Errorf("store should still verify: %+v", rs)
			}
		}},
		{name: "checksum mismatch", config: mismatch, wantCode: 1, check: func(t *testing.T, rs []verifyResult) {
			i := slices.IndexFunc(rs, func(r verifyResult) bool { return r.Name == "fake" })
			if i < 0 || rs[i].OK || !strings.Contains(rs[i].Error, "plugins.fake.sha256: binary checksum mismatch") || !strings.Contains(rs[i].Error, sum) {
				t.Errorf("results = %+v, want a checksum mismatch naming the key and the binary's sum", rs)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := skein(t, testEnv(t), "plugins", "verify", "--json", "--config", tc.config)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			var rs []verifyResult
			if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			tc.check(t, rs)
		})
	}
}

func TestPluginsListAndDescribe(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "skein.yaml", "node:\n  data_dir: data\nplugins:\n  scratch:\n    id: store.memory\n    mode: linked\n")
	env := testEnv(t)
	r := skein(t, env, "plugins", "list", "--json", "--config", cfg)
	var list listResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil {
		t.Fatalf("plugins list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := []pluginEntry{
		{Name: "scratch", ID: "store.memory", Enabled: true, Mode: "linked", Binary: "built in"},
		{Name: "store", ID: "store.pebble", Enabled: true, Mode: "process", Binary: "built in"},
	}
	if !slices.Equal(list.Configured, want) {
		t.Errorf("configured = %+v, want %+v", list.Configured, want)
	}
	// What is available, as caddy list-modules shows it: every built-in
	// with its kinds, configured or not.
	builtIn := map[string]string{}
	for _, b := range list.BuiltIn {
		builtIn[b.ID] = joinKinds(b.Kinds)
	}
	for id, kinds := range map[string]string{"network.ipfs": "network", "store.pebble": "store", "store.memory": "store"} {
		if builtIn[id] != kinds {
			t.Errorf("built in %s: kinds %q, want %q (all %+v)", id, builtIn[id], kinds, list.BuiltIn)
		}
	}
	r = skein(t, env, "plugins", "list", "--config", cfg)
	if r.code != 0 || !regexp.MustCompile(`(?m)^network\.ipfs +network +\S+$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "BUILT IN") {
		t.Errorf("plugins list text lacks the built-ins:\n%s", r.stdout)
	}

	r = skein(t, env, "plugins", "describe", "store", "--json", "--config", cfg)
	var d describeResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &d) != nil {
		t.Fatalf("plugins describe: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if d.ID != "store.pebble" || d.Mode != "process" || d.PID <= 0 || len(d.ConfigSchema) == 0 || !slices.Contains(d.Capabilities, "store.durable") {
		t.Errorf("describe = %+v", d)
	}
	r = skein(t, env, "plugins", "describe", "nope", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, `no plugin named "nope"`) {
		t.Errorf("describe nope: exit %d, stderr %q", r.code, r.stderr)
	}
}

// lineWaiter collects a child's stderr lines and lets a test wait for one.
type lineWaiter struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
	done  chan struct{}
}

func newLineWaiter(r io.Reader) *lineWaiter {
	w := &lineWaiter{added: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.mu.Unlock()
			select {
			case w.added <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// wait returns the first line containing s, failing the test after d.
func (w *lineWaiter) wait(t testing.TB, s string, d time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if strings.Contains(l, s) {
				w.mu.Unlock()
				return l
			}
		}
		w.mu.Unlock()
		select {
		case <-w.added:
		case <-w.done:
			// The stream ended: one last look, then give up.
			w.mu.Lock()
			for _, l := range w.lines {
				if strings.Contains(l, s) {
					w.mu.Unlock()
					return l
				}
			}
			all := strings.Join(w.lines, "\n")
			w.mu.Unlock()
			t.Fatalf("stderr ended without %q:\n%s", s, all)
		case <-deadline.C:
			w.mu.Lock()
			all := strings.Join(w.lines, "\n")
			w.mu.Unlock()
			t.Fatalf("no %q within %s:\n%s", s, d, all)
		}
	}
}

func (w *lineWaiter) text() string {
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// processGone reports whether pid has exited: it no longer exists, or is
// a zombie waiting for a reaper (in a container, PID 1 may never reap it).
func processGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// Field 3, after the parenthesised command name, is the state.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitGone waits up to d for pid to exit.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	return true
}

func TestRunStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "node")
			env := testEnv(t)
			if r := skein(t, env, "init", "--data-dir", dataDir); r.code != 0 {
				t.Fatalf("init: %s", r.stderr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, skeinBin, "run", "--data-dir", dataDir)
			// The network plugin listens on loopback, on a free port.
			cmd.Env = append(env, "SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := newLineWaiter(stderr)
			up := lines.wait(t, `msg="plugin up" plugin=store`, 30*time.Second)
			m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(up)
			if m == nil {
				t.Fatalf("no pid in %q", up)
			}
			pluginPID, _ := strconv.Atoi(m[1])
			if !strings.Contains(up, "mode=process") || !strings.Contains(up, "id=store.pebble") {
				t.Errorf("plugin up line %q does not say how the store runs", up)
			}
			lines.wait(t, "client API serving", 30*time.Second)
			lines.wait(t, "node running", 30*time.Second)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			all := lines.text()
			err = cmd.Wait()
			if err != nil {
				t.Fatalf("run exited with %v after %s; want exit 0\n%s", err, sig, all)
			}
			if !strings.Contains(all, "node stopped cleanly") {
				t.Errorf("no clean-stop line:\n%s", all)
			}
			if !waitGone(pluginPID, 10*time.Second) {
				t.Errorf("plugin process %d still exists after the node exited", pluginPID)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(tmp string) []string
	}{
		{
			name: "messaging between three nodes",
			args: []string{"demo"},
			want: func(tmp string) []string {
				return []string{
					"[1/8] data directories under " + tmp,
					"network.ipfs pid", "store.pebble pid",
					"bob joined in", "carol joined in",
					`alice -> "hello from alice"   seen by bob in`,
					`carol -> "hello from carol"   seen by alice in`,
					"all three nodes hold the 3 messages in the same order",
					"carol holds all 23 messages",
					"in the same order as alice and bob",
					"summary: message latency p50",
					"[8/8] nodes stopped; removed " + tmp,
					"demo ok in",
				}
			},
		},
		{
			name: "supervised plugins",
			args: []string{"demo", "--plugins"},
			want: func(tmp string) []string {
				return []string{
					"[1/6] data directory " + tmp,
					"store.pebble",
					"process pid",
					"healthy",
					"batch of 1000 puts, synced",
					"prefix query demo/ -> 1000 keys in order",
					"restarted by the supervisor: pid",
					"(restarts: 1)",
					`get demo/0001 -> "value 1"`,
					"node stopped cleanly",
					"[6/6] removed " + tmp,
					"demo ok in",
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			env := []string{"HOME=" + t.TempDir(), "TMPDIR=" + tmp, "PATH=" + os.Getenv("PATH")}
			r := skein(t, env, tc.args...)
			if r.code != 0 {
				t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", tc.args, r.code, r.stdout, r.stderr)
			}
			for _, want := range tc.want(tmp) {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%v output lacks %q:\n%s", tc.args, want, r.stdout)
				}
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("demo left %d entries in TMPDIR (%v)", len(left), left[0].Name())
			}
		})
	}
}

func TestPluginServeByHand(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		wantStderr string
	}{
		{name: "built-in refuses without a host", id: "store.pebble", wantStderr: "not meant to be executed directly"},
		{name: "unknown id", id: "store.nope", wantStderr: "store.nope is not built in (built in: " + strings.Join(pluginhost.Registered(), ", ") + ")"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := skein(t, testEnv(t), "plugin", "serve", tc.id)
			if r.code != 1 || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tc.wantStderr)
			}
			if r.stdout != "" {
				t.Errorf("plugin serve wrote to stdout (reserved for the handshake): %q", r.stdout)
			}
		})
	}
}

// Every preset `skein init --preset` offers makes a data directory whose
// config passes `skein config check`, and names its network plugin.
func TestPresetsCheck(t *testing.T) {
	env := testEnv(t)
	for _, name := range presetNames() {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			if r := skein(t, env, "init", "--preset", name, "--data-dir", dir); r.code != 0 {
				t.Fatalf("init --preset %s: %s", name, r.stderr)
			}
			r := skein(t, env, "config", "check", "--config", filepath.Join(dir, "skein.yaml"))
			if r.code != 0 {
				t.Fatalf("config check of preset %s: %s", name, r.stderr)
			}
		})
	}
	if len(presetNames()) < 2 {
		t.Fatalf("presets: %v", presetNames())
	}
}

// TestRunRefusesUninitialised: `skein run` on a directory skein init never
// prepared says to run it, naming the directory, whatever the environment
// holds, and starts nothing.
func TestRunRefusesUninitialised(t *testing.T) {
	base := t.TempDir()
	noKeys := filepath.Join(base, "nokeys")
	if err := os.MkdirAll(noKeys, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgFile := writeFile(t, base, "hand.yaml", "node:\n  data_dir: "+noKeys+"\nplugins:\n  network:\n    id: network.ipfs\n")
	tests := []struct {
		name string
		dir  string
		args []string
		env  []string
		want string
	}{
		{name: "empty directory", dir: filepath.Join(base, "empty"), want: "has no config (skein.yaml)"},
		{name: "env for the missing file's plugins", dir: filepath.Join(base, "env"),
			env:  []string{"SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]"},
			want: "has no config (skein.yaml)"},
		{name: "config but no keystore", dir: noKeys, args: []string{"--config", cfgFile}, want: "has no keystore"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := skein(t, testEnv(t, tc.env...), append([]string{"run", "--data-dir", tc.dir}, tc.args...)...)
			want := "skein: data directory " + tc.dir + " " + tc.want + ": it was never initialised; run `skein init --data-dir " + tc.dir + "` first"
			if r.code != 1 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr:\n%s\nwant one line starting %q", r.code, r.stderr, want)
			}
			if _, err := os.Stat(filepath.Join(tc.dir, "store")); err == nil {
				t.Errorf("a plugin ran in %s", tc.dir)
			}
		})
	}
}

// TestDataDirInUse: a second `skein run`, `plugins verify` or `plugins
// describe` on the data directory of a running node says in one line that
// the node there runs, with its pid.
func TestDataDirInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	env := testEnv(t)
	if r := skein(t, env, "init", "--data-dir", dir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	n := startKill9Node(t, env, dir)
	want := fmt.Sprintf("skein: the node at %s is running (pid %d): stop it first, or use another --data-dir\n", dir, n.cmd.Process.Pid)
	for _, args := range [][]string{
		{"run", "--data-dir", dir},
		{"plugins", "verify", "--data-dir", dir},
		{"plugins", "describe", "store", "--data-dir", dir},
	} {
		t.Run(args[0]+" "+args[1], func(t *testing.T) {
			r := skein(t, append(slices.Clone(env), "SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]"), args...)
			if r.code != 1 || r.stderr != want {
				t.Fatalf("exit %d, stderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
			}
		})
	}
	n.stop(t)
	// Stopped, the directory is free again.
	if r := skein(t, env, "plugins", "verify", "--data-dir", dir, "--json"); strings.Contains(r.stderr, "is running") {
		t.Fatalf("verify after the node stopped: %s", r.stderr)
	}
}

var pipeBin struct {
	once      sync.Once
	path, sum string
	err       error
}

// transportPipe builds examples/transport-pipe (protocol x-unix-pipe) once
// and returns its path and sha256.
func transportPipe(t testing.TB) (string, string) {
	t.Helper()
	pipeBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "skein-cli-pipe-")
		if err != nil {
			pipeBin.err = err
			return
		}
		pipeBin.path = filepath.Join(dir, "transport-pipe")
		if out, err := exec.Command("go", "build", "-o", pipeBin.path, "../../examples/transport-pipe").CombinedOutput(); err != nil {
			pipeBin.err = fmt.Errorf("build transport-pipe: %v\n%s", err, out)
			return
		}
		pipeBin.sum, pipeBin.err = pluginhost.FileSHA256(pipeBin.path)
	})
	if pipeBin.err != nil {
		t.Fatal(pipeBin.err)
	}
	return pipeBin.path, pipeBin.sum
}

// TestVerifyChecksWhatRunChecks: a transport plugin the network is not
// configured to take fails plugins verify (skein run would refuse to
// start) with what to add; configured, it verifies.
func TestVerifyChecksWhatRunChecks(t *testing.T) {
	pipe, sum := transportPipe(t)
	dir := t.TempDir()
	config := func(name, transports string) string {
		return writeFile(t, dir, name, `node:
  data_dir: `+name+`.data
plugins:
  network:
    id: network.ipfs
    config:
      listen: [/ip4/127.0.0.1/tcp/0]
      dht_mode: "off"
`+transports+`
  pipe:
    id: transport.pipe
    path: `+pipe+`
    sha256: "`+sum+`"
`)
	}
	tests := []struct {
		name     string
		config   string
		wantCode int
		wantErr  string
	}{
		{"protocol not configured", config("missing", ""), 1, `transport protocol not configured: add "x-unix-pipe" under the network plugin's config key transports`},
		{"protocol configured", config("configured", "      transports: {x-unix-pipe: []}"), 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := skein(t, testEnv(t), "plugins", "verify", "--json", "--config", tc.config)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			var rs []verifyResult
			if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			i := slices.IndexFunc(rs, func(r verifyResult) bool { return r.Name == "pipe" })
			if i < 0 || rs[i].OK != (tc.wantErr == "") || !strings.Contains(rs[i].Error, tc.wantErr) {
				t.Fatalf("pipe = %+v, want error %q", rs, tc.wantErr)
			}
		})
	}
}

// TestExampleHasEveryPluginKey: config.example.yaml lists every key of
// each built-in plugin's own config (the network's entry, and a disabled
// entry for the others) with its default, and with every one of them
// uncommented and every entry enabled it is a valid config (skein config
// check), so the defaults it shows are values the plugins take.
func TestExampleHasEveryPluginKey(t *testing.T) {
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	entries := map[string][]sdk.ConfigKey{} // plugin id -> schema
	for _, id := range pluginhost.Registered() {
		if strings.HasPrefix(id, "store.") {
			continue // the defaults' own entry, tested in core/config
		}
		f, _ := pluginhost.Lookup(id)
		d, err := f().Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		entries[id] = d.ConfigSchema
		for _, k := range d.ConfigSchema {
			keys[k.Key] = true
		}
	}
	if len(entries["network.ipfs"]) == 0 {
		t.Fatal("the network plugin describes no config keys")
	}
	var uncommented []string
	keyLine := regexp.MustCompile(`^      # ([a-z_]+): `)
	for _, line := range strings.Split(string(example), "\n") {
		if m := keyLine.FindStringSubmatch(line); m != nil && keys[m[1]] {
			line = "      " + strings.TrimPrefix(line, "      # ")
		}
		if line == "    enabled: false" {
			line = "    enabled: true"
		}
		uncommented = append(uncommented, line)
	}
	all := strings.Join(uncommented, "\n")
	// An enabled transport plugin needs its protocol under the network's
	// transports (transport.ble: x-ble).
	all = strings.Replace(all, "      transports: {}\n", "      transports: {x-ble: [auto]}\n", 1)
	for id, schema := range entries {
		i := strings.Index(all, "\n    id: "+id+"\n")
		if i < 0 {
			t.Errorf("config.example.yaml has no entry for %s", id)
			continue
		}
		entry := all[i:]
		if j := regexp.MustCompile(`\n  [a-z_]+:\n`).FindStringIndex(entry); j != nil {
			entry = entry[:j[0]]
		}
		for _, k := range schema {
			if !regexp.MustCompile(`(?m)^      ` + k.Key + `: `).MatchString(entry) {
				t.Errorf("config.example.yaml's %s entry has no config key %s", id, k.Key)
			}
		}
	}
	dir := t.TempDir()
	file := writeFile(t, dir, "all.yaml", strings.Replace(all, "  data_dir: ~/.skein\n", "  data_dir: "+dir+"/data\n", 1))
	if r := skein(t, testEnv(t), "config", "check", "--config", file); r.code != 0 || !strings.Contains(r.stdout, "discovery.mdns") {
		t.Fatalf("the example with every key set and every plugin enabled does not check: %s%s", r.stdout, r.stderr)
	}
}

// TestInitPort: init --port writes listen addresses on that port (any:
// port 0, free ports), and refuses what is not a port.
func TestInitPort(t *testing.T) {
	tests := []struct {
		port string
		want string // the listen line written, or the error
		code int
	}{
		{"4101", "      listen: [/ip4/0.0.0.0/tcp/4101, /ip4/0.0.0.0/udp/4101/quic-v1, /ip4/0.0.0.0/tcp/4102/ws]\n", 0},
		{"any", "      listen: [/ip4/0.0.0.0/tcp/0, /ip4/0.0.0.0/udp/0/quic-v1, /ip4/0.0.0.0/tcp/0/ws]\n", 0},
		{"65535", "--port \"65535\": want a port 1-65534", 1},
		{"http", "--port \"http\": want a port", 1},
	}
	for _, tc := range tests {
		t.Run(tc.port, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			r := skein(t, testEnv(t), "init", "--data-dir", dir, "--port", tc.port)
			if r.code != tc.code {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if tc.code != 0 {
				if !strings.Contains(r.stderr, tc.want) {
					t.Fatalf("stderr %q lacks %q", r.stderr, tc.want)
				}
				return
			}
			b, err := os.ReadFile(filepath.Join(dir, "skein.yaml"))
			if err != nil || !strings.Contains(string(b), tc.want) {
				t.Fatalf("config lacks %q (%v):\n%s", tc.want, err, b)
			}
			if r := skein(t, testEnv(t), "config", "check", "--data-dir", dir); r.code != 0 {
				t.Fatalf("config check: %s", r.stderr)
			}
		})
	}
}

// TestPluginsStatus: plugins status shows the running node's plugins, from
// its client API, with their process, state and what they report.
func TestPluginsStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	env := testEnv(t)
	if r := skein(t, env, "init", "--data-dir", dir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	n := startKill9Node(t, env, dir)
	defer n.stop(t)
	r := skein(t, env, "plugins", "status", "--json", "--data-dir", dir)
	var ps []struct {
		Name    string            `json:"name"`
		ID      string            `json:"id"`
		Kinds   []string          `json:"kinds"`
		Mode    string            `json:"mode"`
		PID     int               `json:"pid"`
		State   string            `json:"state"`
		Healthy bool              `json:"healthy"`
		Message string            `json:"message"`
		Details map[string]string `json:"details"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ps) != nil {
		t.Fatalf("plugins status --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if len(ps) != 2 {
		t.Fatalf("plugins = %+v, want network and store", ps)
	}
	for _, p := range ps {
		if p.PID <= 0 || p.State != "running" || !p.Healthy || p.Mode != "process" || len(p.Kinds) != 1 {
			t.Errorf("plugin %+v: want running out of process, healthy", p)
		}
	}
	r = skein(t, env, "plugins", "status", "--data-dir", dir)
	if r.code != 0 || !regexp.MustCompile(`(?m)^network: network\.ipfs \S+, process pid \d+, running, healthy`).MatchString(r.stdout) {
		t.Errorf("plugins status text:\n%s%s", r.stdout, r.stderr)
	}
}
