package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logEvent is one slog record as the event hub keeps it.
type logEvent struct {
	time    time.Time
	level   slog.Level
	message string
	attrs   map[string]string
}

// eventHub fans a plugin's log records out to Events subscribers. A slow
// subscriber loses records (counted and reported) rather than blocking the
// plugin's logging.
type eventHub struct {
	mu   sync.Mutex
	subs map[*hubSub]struct{}
}

type hubSub struct {
	ch      chan logEvent
	min     slog.Level
	dropped int
}

func newEventHub() *eventHub { return &eventHub{subs: map[*hubSub]struct{}{}} }

func (h *eventHub) subscribe(min slog.Level) (<-chan logEvent, func()) {
	s := &hubSub{ch: make(chan logEvent, 1024), min: min}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s.ch, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}
}

func (h *eventHub) enabled(l slog.Level) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if l >= s.min {
			return true
		}
	}
	return false
}

func (h *eventHub) publish(ev logEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if ev.level < s.min {
			continue
		}
		if s.dropped > 0 {
			select {
			case s.ch <- logEvent{time: ev.time, level: slog.LevelWarn, message: fmt.Sprintf("event stream dropped %d log records", s.dropped)}:
				s.dropped = 0
			default:
			}
		}
		select {
		case s.ch <- ev:
		default:
			s.dropped++
		}
	}
}

// teeHandler writes records to an inner handler (stderr) and to the hub.
type teeHandler struct {
	inner  slog.Handler
	hub    *eventHub
	attrs  []slog.Attr
	groups []string
}

func newTeeHandler(inner slog.Handler, hub *eventHub) *teeHandler {
	return &teeHandler{inner: inner, hub: hub}
}

func (t *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.inner.Enabled(ctx, l) || t.hub.enabled(l)
}

func (t *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.inner.Enabled(ctx, r.Level) {
		err = t.inner.Handle(ctx, r)
	}
	if t.hub.enabled(r.Level) {
		attrs := map[string]string{}
		prefix := ""
		for _, g := range t.groups {
			prefix += g + "."
		}
		for _, a := range t.attrs {
			flattenAttr(attrs, "", a)
		}
		r.Attrs(func(a slog.Attr) bool {
			flattenAttr(attrs, prefix, a)
			return true
		})
		t.hub.publish(logEvent{time: r.Time, level: r.Level, message: r.Message, attrs: attrs})
	}
	return err
}

func flattenAttr(dst map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			flattenAttr(dst, p, ga)
		}
		return
	}
	if a.Key == "" {
		return
	}
	dst[prefix+a.Key] = v.String()
}

func (t *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *t
	n.inner = t.inner.WithAttrs(as)
	prefix := ""
	for _, g := range t.groups {
		prefix += g + "."
	}
	n.attrs = append([]slog.Attr(nil), t.attrs...)
	for _, a := range as {
		if prefix != "" {
			a.Key = prefix + a.Key
		}
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (t *teeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	n := *t
	n.inner = t.inner.WithGroup(name)
	n.groups = append(append([]string(nil), t.groups...), name)
	return &n
}

// hclogReplace renames slog's JSON keys to the ones go-plugin's host parses
// from a plugin's stderr (hclog's JSON format), so the host logs each line
// at its level under the plugin's name.
func hclogReplace(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		a.Key = "@timestamp"
		// go-plugin (v1.8) parses exactly hclog's JSON time format, six
		// fractional digits; slog's RFC 3339 with nanoseconds makes it
		// take the whole record for a plain line, level and fields lost.
		if t, ok := a.Value.Any().(time.Time); ok {
			a.Value = slog.StringValue(t.Format(hclog.TimeFormatJSON))
		}
	case slog.LevelKey:
		a.Key = "@level"
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(hclogLevel(l))
		}
	case slog.MessageKey:
		a.Key = "@message"
	}
	return a
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
