package pluginhost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is an slog.Handler that keeps every record and lets a test
// wait for one.
type logRecorder struct {
	mu      sync.Mutex
	records []recorded
	changed chan struct{}
	attrs   []slog.Attr
	root    *logRecorder
}

type recorded struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder {
	r := &logRecorder{changed: make(chan struct{})}
	r.root = r
	return r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{}
	for _, a := range r.attrs {
		m[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	root := r.root
	root.mu.Lock()
	root.records = append(root.records, recorded{rec.Level, rec.Message, m})
	close(root.changed)
	root.changed = make(chan struct{})
	root.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := &logRecorder{root: r.root, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
	return c
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// wait blocks until a record satisfies match, failing the test after d.
func (r *logRecorder) wait(t testing.TB, d time.Duration, what string, match func(recorded) bool) recorded {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, rec := range r.records {
			if match(rec) {
				r.mu.Unlock()
				return rec
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no log record %s within %s; have:\n%s", what, d, r.dump())
		}
	}
}

func (r *logRecorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, rec := range r.records {
		fmt.Fprintf(&b, "  %s %q %v\n", rec.level, rec.msg, rec.attrs)
	}
	return b.String()
}

var selfSum struct {
	once sync.Once
	path string
	sum  string
	err  error
}

// testBinary returns the test binary's path and sha256.
func testBinary(t testing.TB) (string, string) {
	t.Helper()
	selfSum.once.Do(func() {
		selfSum.path, selfSum.err = os.Executable()
		if selfSum.err == nil {
			selfSum.sum, selfSum.err = FileSHA256(selfSum.path)
		}
	})
	if selfSum.err != nil {
		t.Fatalf("test binary: %v", selfSum.err)
	}
	return selfSum.path, selfSum.sum
}

// processSpec is a Spec that runs the test binary as the named test plugin.
func processSpec(t testing.TB, name, plugin string) Spec {
	t.Helper()
	path, sum := testBinary(t)
	return Spec{
		Name:    name,
		Command: path,
		SHA256:  sum,
		// GORACE: a -race binary sleeps 1s at exit by default.
		Env:          map[string]string{testPluginEnv: plugin, "GORACE": "atexit_sleep_ms=0"},
		StartTimeout: 10 * time.Second,
		StopTimeout:  5 * time.Second,
		Restart:      RestartPolicy{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond},
	}
}

// newTestHost makes a Host logging into a recorder, stopped at cleanup.
func newTestHost(t testing.TB) (*Host, *logRecorder) {
	t.Helper()
	rec := newLogRecorder()
	h := New(slog.New(rec))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = h.Stop(ctx)
	})
	return h, rec
}

func launch(t testing.TB, h *Host, spec Spec) *Plugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := h.Launch(ctx, spec)
	if err != nil {
		t.Fatalf("launch %s: %v", spec.Name, err)
	}
	return p
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor waits until cond (called with p.mu held, so it reads fields, not
// methods) holds, failing the test after d.
func waitFor(t testing.TB, p *Plugin, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok := cond()
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("plugin %s: %s not reached within %s (state %s, last error %v)", p.Name(), what, d, p.state, p.lastErr)
		}
	}
}

// teeHandlers sends every record to each handler.
type teeHandlers []slog.Handler

func (t teeHandlers) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t teeHandlers) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t teeHandlers) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(teeHandlers, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (t teeHandlers) WithGroup(name string) slog.Handler {
	out := make(teeHandlers, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}

// lockedBuffer is a log destination the test reads while plugins write.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lineWith returns the first line holding s (the record was handled
// before the recorder saw it, so it is there).
func (l *lockedBuffer) lineWith(t testing.TB, s string) string {
	t.Helper()
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	t.Fatalf("no line with %q in:\n%s", s, l.String())
	return ""
}
