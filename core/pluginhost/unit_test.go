package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestSpecValidate(t *testing.T) {
	sum := strings.Repeat("0", 64)
	tests := []struct {
		name    string
		spec    Spec
		wantErr string // "" for valid
	}{
		{"process ok", Spec{Name: "s", Command: "/bin/x", SHA256: sum}, ""},
		{"no name", Spec{Command: "/bin/x", SHA256: sum}, "name is empty"},
		{"no command", Spec{Name: "s", SHA256: sum}, "plugins.s.path"},
		{"no sha256", Spec{Name: "s", Command: "/bin/x"}, "plugins.s.sha256"},
		{"short sha256", Spec{Name: "s", Command: "/bin/x", SHA256: "abcd"}, "64 hex digits"},
		{"linked ok", Spec{Name: "s", ID: "store.mem", Mode: ModeLinked}, ""},
		{"linked no id", Spec{Name: "s", Mode: ModeLinked}, "plugin id"},
		{"reattach no line", Spec{Name: "s", Mode: ModeReattach}, "SKEIN_PLUGIN_REATTACH"},
		{"bad env name", Spec{Name: "s", Command: "/bin/x", SHA256: sum, Env: map[string]string{"A=B": "c"}}, "env name"},
		{"bad pass_env", Spec{Name: "s", Command: "/bin/x", SHA256: sum, PassEnv: []string{""}}, "pass_env"},
		{"unknown mode", Spec{Name: "s", Mode: Mode(9)}, "unknown mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("validate err = %v, want ErrInvalidSpec containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	p := newPlugin(Spec{Name: "b", Restart: RestartPolicy{Base: 10 * time.Millisecond, Max: 70 * time.Millisecond}}.withDefaults(), slog.Default())
	want := []time.Duration{10, 20, 40, 70, 70, 70}
	for n, w := range want {
		if got := p.backoff(n); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %s, want %s", n, got, w*time.Millisecond)
		}
	}
	if got := p.backoff(1000); got != 70*time.Millisecond {
		t.Errorf("backoff(1000) = %s, want the max", got)
	}
}

func TestPluginEnv(t *testing.T) {
	host := map[string]string{"PATH": "/bin", "SECRET_TOKEN": "s3cr3t", "EXTRA": "e", "TZ": "UTC"}
	lookup := func(k string) (string, bool) { v, ok := host[k]; return v, ok }
	spec := Spec{PassEnv: []string{"EXTRA", "MISSING"}, Env: map[string]string{"B": "2", "A": "1", "PLUGIN_MIN_PORT": "evil"}}
	got := pluginEnv(spec, []string{"MAGIC=cookie", "PLUGIN_MIN_PORT=10000"}, lookup)
	want := []string{"PATH=/bin", "TZ=UTC", "EXTRA=e", "A=1", "B=2", "PLUGIN_MIN_PORT=10000", "MAGIC=cookie"}
	if !slices.Equal(got, want) {
		t.Fatalf("pluginEnv = %q, want %q", got, want)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeProcess, ModeLinked, ModeReattach} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("inline"); err == nil {
		t.Error("ParseMode(inline) did not fail")
	}
}

func TestHCLogAdapter(t *testing.T) {
	tests := []struct {
		name      string
		log       func(l hclog.Logger)
		wantLevel slog.Level
		wantMsg   string
		wantAttrs map[string]string
	}{
		{"info with args", func(l hclog.Logger) { l.Info("hello", "k", 1) }, slog.LevelInfo, "hello", map[string]string{"k": "1"}},
		{"trace", func(l hclog.Logger) { l.Trace("t") }, levelTrace, "t", nil},
		{"error", func(l hclog.Logger) { l.Error("e") }, slog.LevelError, "e", nil},
		{"plain stderr line", func(l hclog.Logger) { l.Named("bin").Debug("raw line") }, slog.LevelInfo, "raw line", map[string]string{"stream": "stderr"}},
		{"structured debug on stderr", func(l hclog.Logger) { l.Named("bin").Debug("d", "timestamp", "x") }, slog.LevelDebug, "d", nil},
		{"slog json line on stderr", func(l hclog.Logger) {
			l.Named("bin").Debug(`{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"disk low","free":"1%"}`)
		}, slog.LevelWarn, "disk low", map[string]string{"free": "1%"}},
		{"hclog json line with nanoseconds on stderr", func(l hclog.Logger) {
			// What sdk.Serve wrote before its timestamps had six digits:
			// go-plugin cannot parse it and passes the raw line on.
			l.Named("bin").Debug(`{"@timestamp":"2026-01-01T00:00:00.123456789Z","@level":"warn","@message":"disk low","free":"1%","disk":{"dev":"sda"}}`)
		}, slog.LevelWarn, "disk low", map[string]string{"free": "1%", "disk": "[dev=sda]"}},
		{"record parsed by go-plugin", func(l hclog.Logger) {
			l.Named("bin").Error("boom", "plugin", "network.ipfs", "disk", map[string]any{"dev": "sda"}, "timestamp", "2026-01-01T00:00:00.000Z")
		}, slog.LevelError, "boom", map[string]string{"disk": "[dev=sda]", "plugin_id": "network.ipfs"}},
		{"with", func(l hclog.Logger) { l.With("a", "b").Warn("w") }, slog.LevelWarn, "w", map[string]string{"a": "b"}},
		{"dangling arg", func(l hclog.Logger) { l.Info("x", "lonely") }, slog.LevelInfo, "x", map[string]string{"extra": "lonely"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newLogRecorder()
			tc.log(newHCLog(slog.New(rec)))
			if len(rec.records) != 1 {
				t.Fatalf("got %d records, want 1:\n%s", len(rec.records), rec.dump())
			}
			r := rec.records[0]
			if r.level != tc.wantLevel || r.msg != tc.wantMsg {
				t.Fatalf("record = %s %q, want %s %q", r.level, r.msg, tc.wantLevel, tc.wantMsg)
			}
			for k, v := range tc.wantAttrs {
				if r.attrs[k] != v {
					t.Errorf("attr %s = %q, want %q (all %v)", k, r.attrs[k], v, r.attrs)
				}
			}
			if _, ok := r.attrs["timestamp"]; ok && strings.HasPrefix(tc.name, "record parsed") {
				t.Errorf("go-plugin's timestamp kept: %v", r.attrs)
			}
		})
	}
}

func TestSelfCommand(t *testing.T) {
	path, sum, err := SelfCommand()
	if err != nil {
		t.Fatal(err)
	}
	wantPath, wantSum := testBinary(t)
	if sum != wantSum {
		t.Errorf("SelfCommand sum = %s, want %s", sum, wantSum)
	}
	if path == "" {
		t.Errorf("SelfCommand path empty (want %s)", wantPath)
	}
	// A Spec made from it passes validation and the checksum check.
	spec := Spec{Name: "self", Command: path, SHA256: sum, Args: []string{"plugin", "serve", "store.pebble"}}
	if err := spec.validate(); err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(spec); err != nil {
		t.Fatal(err)
	}
}

// The checksum cache never hides a change: a binary rewritten in place
// (same size, mtime set back) or replaced is hashed again and refused.
func TestChecksumCacheSeesChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin")
	write := func(content string) string {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		return hex.EncodeToString(sum[:])
	}
	good := write("#!/bin/sh\necho genuine\n")
	spec := Spec{Name: "p", Command: path, SHA256: good}
	for _, tc := range []struct {
		name   string
		change func()
		ok     bool
	}{
		{"first check hashes", func() {}, true},
		{"second check (cached)", func() {}, true},
		{"rewritten in place, mtime set back", func() {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			write("#!/bin/sh\necho evil!!!\n") // same length
			if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"replaced by another file", func() {
			tmp := filepath.Join(dir, "other")
			if err := os.WriteFile(tmp, []byte("#!/bin/sh\necho other!\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"genuine again", func() { write("#!/bin/sh\necho genuine\n") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			err := checkBinary(spec)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrChecksumMismatch) {
				t.Fatalf("err = %v, want ErrChecksumMismatch", err)
			}
		})
	}
}
