package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// levelTrace is hclog's Trace in slog terms (below Debug).
const levelTrace = slog.LevelDebug - 4

// slogHCLog adapts an *slog.Logger to the hclog.Logger that go-plugin
// logs through: its own client messages and every line the plugin writes to
// stderr. Lines the plugin wrote to stderr without a level (a plain line,
// not a structured log record) are logged at Info with stream=stderr so that
// they are not lost below the node's level; a panic trace is logged at Error.
type slogHCLog struct {
	l      *slog.Logger
	name   string
	stderr bool // this logger receives the plugin's stderr lines
	args   []any
}

var _ hclog.Logger = (*slogHCLog)(nil)

func newHCLog(l *slog.Logger) *slogHCLog { return &slogHCLog{l: l} }

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *slogHCLog) Log(level hclog.Level, msg string, args ...any) {
	lvl := toSlogLevel(level)
	if h.stderr && level == hclog.Debug && len(args) == 0 {
		// A line go-plugin could not parse as an hclog record, logged at
		// Debug: a JSON record in another dialect, or a plain line.
		logLine(h.l, "stderr", slog.LevelInfo, msg)
		return
	}
	ctx := context.Background()
	if !h.l.Enabled(ctx, lvl) {
		return
	}
	if h.stderr {
		// A plugin's own record, parsed by go-plugin, which appends the
		// plugin's timestamp: the node's record has its own time.
		h.l.Log(ctx, lvl, strings.TrimSpace(msg), liftArgs(pluginArgs(withoutTrailingTimestamp(args)))...)
		return
	}
	h.l.Log(ctx, lvl, strings.TrimSpace(msg), liftArgs(normaliseArgs(args))...)
}

// pluginArgs is normaliseArgs for the fields of a plugin's own record: its
// "plugin" field (by convention the plugin's ID) becomes "plugin_id", so it
// neither repeats nor shadows the node's plugin=<name>.
func pluginArgs(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, "extra", args[i])
			break
		}
		k, ok := args[i].(string)
		if !ok {
			k = "key"
		}
		if k == "plugin" {
			k = "plugin_id"
		}
		out = append(out, k, args[i+1])
	}
	return out
}

// withoutTrailingTimestamp drops the "timestamp" pair go-plugin appends to
// the fields of every record it parsed from a plugin's stderr.
func withoutTrailingTimestamp(args []any) []any {
	if n := len(args); n >= 2 && n%2 == 0 {
		if k, ok := args[n-2].(string); ok && k == "timestamp" {
			return args[:n-2]
		}
	}
	return args
}

// liftArgs turns JSON objects among the values (a plugin's slog groups,
// decoded from its JSON line) into slog groups, so the node's handler
// writes them as fields (grp.key=v in text, a nested object in JSON)
// rather than as one opaque value.
func liftArgs(args []any) []any {
	for i := 1; i < len(args); i += 2 {
		if m, ok := args[i].(map[string]any); ok {
			args[i] = groupOf(m)
		}
	}
	return args
}

func groupOf(m map[string]any) slog.Value {
	attrs := make([]slog.Attr, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if sub, ok := m[k].(map[string]any); ok {
			attrs = append(attrs, slog.Attr{Key: k, Value: groupOf(sub)})
			continue
		}
		attrs = append(attrs, slog.Any(k, m[k]))
	}
	return slog.GroupValue(attrs...)
}

type slogLine struct {
	level slog.Level
	msg   string
	args  []any
}

// parseJSONRecord decodes a JSON log line in either dialect a plugin may
// write: hclog's (@message, @level, @timestamp, in any precision) or
// slog's JSONHandler's (msg, level, time).
func parseJSONRecord(line string) (slogLine, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return slogLine{}, false
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return slogLine{}, false
	}
	var out slogLine
	if msg, ok := m["@message"].(string); ok {
		out.msg = msg
		out.level = slog.LevelInfo
		if lv, ok := m["@level"].(string); ok {
			if l := hclog.LevelFromString(lv); l != hclog.NoLevel {
				out.level = toSlogLevel(l)
			}
		}
		delete(m, "@message")
		delete(m, "@level")
		delete(m, "@timestamp")
		delete(m, "@module")
		delete(m, "@caller")
	} else if msg, ok := m[slog.MessageKey].(string); ok {
		out.msg = msg
		if lv, ok := m[slog.LevelKey].(string); ok {
			if err := out.level.UnmarshalText([]byte(lv)); err != nil {
				out.level = slog.LevelInfo
			}
		}
		delete(m, slog.MessageKey)
		delete(m, slog.LevelKey)
		delete(m, slog.TimeKey)
	} else {
		return slogLine{}, false
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out.args = append(out.args, k, m[k])
	}
	return out, true
}

// logLine logs one line a plugin wrote: a JSON record keeps its level and
// its fields become the node's record's fields; a plain line is logged at level with stream=<stream>.
func logLine(l *slog.Logger, stream string, level slog.Level, line string) {
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return
	}
	ctx := context.Background()
	if rec, ok := parseJSONRecord(line); ok {
		if l.Enabled(ctx, rec.level) {
			l.Log(ctx, rec.level, rec.msg, liftArgs(pluginArgs(rec.args))...)
		}
		return
	}
	l.Log(ctx, level, line, "stream", stream)
}

// lineLogger is an io.Writer that logs each line written to it (go-plugin's
// SyncStderr/SyncStdout: what the plugin writes to os.Stderr/os.Stdout
// after the handshake, carried over gRPC).
type lineLogger struct {
	l      *slog.Logger
	stream string
	level  slog.Level

	mu  sync.Mutex
	buf []byte
}

// maxLogLine bounds a buffered partial line; longer lines are cut.
const maxLogLine = 64 << 10

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		logLine(w.l, w.stream, w.level, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLogLine {
		logLine(w.l, w.stream, w.level, string(w.buf))
		w.buf = nil
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

// normaliseArgs turns hclog's loose key/value list into slog's: keys
// become strings, a dangling value is kept under "extra", and go-plugin's
// own "plugin" key (the binary's path) becomes "binary" so that it does not
// shadow the plugin's name.
func normaliseArgs(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, "extra", args[i])
			break
		}
		k, ok := args[i].(string)
		if !ok {
			k = "key"
		}
		if k == "plugin" {
			k = "binary"
		}
		out = append(out, k, args[i+1])
	}
	return out
}

func (h *slogHCLog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHCLog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHCLog) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHCLog) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHCLog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *slogHCLog) enabled(l slog.Level) bool { return h.l.Enabled(context.Background(), l) }
func (h *slogHCLog) IsTrace() bool             { return h.enabled(levelTrace) }
func (h *slogHCLog) IsDebug() bool             { return h.enabled(slog.LevelDebug) }
func (h *slogHCLog) IsInfo() bool              { return h.enabled(slog.LevelInfo) }
func (h *slogHCLog) IsWarn() bool              { return h.enabled(slog.LevelWarn) }
func (h *slogHCLog) IsError() bool             { return h.enabled(slog.LevelError) }

func (h *slogHCLog) ImpliedArgs() []any { return h.args }

func (h *slogHCLog) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	c.l = h.l.With(normaliseArgs(args)...)
	return &c
}

func (h *slogHCLog) Name() string { return h.name }

// Named is how go-plugin makes the logger for the plugin's stderr (named
// after the binary); the name is kept but not added to every record, the
// "plugin" attribute already says whose line it is.
func (h *slogHCLog) Named(name string) hclog.Logger {
	c := *h
	if c.name == "" {
		c.name = name
	} else {
		c.name += "." + name
	}
	c.stderr = true
	return &c
}

func (h *slogHCLog) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel is a no-op: the node's slog handler decides.
func (h *slogHCLog) SetLevel(hclog.Level) {}

// GetLevel reports the lowest level the slog handler takes.
func (h *slogHCLog) GetLevel() hclog.Level {
	switch {
	case h.IsTrace():
		return hclog.Trace
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (h *slogHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *slogHCLog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slogWriter{h}
}

type slogWriter struct{ h *slogHCLog }

func (w slogWriter) Write(p []byte) (int, error) {
	w.h.Info(string(p))
	return len(p), nil
}
