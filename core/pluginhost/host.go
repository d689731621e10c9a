package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// Host runs the node's plugins: it launches each (or links it in),
// supervises it, and stops them all. The zero value is not usable; call New.
type Host struct {
	logger *slog.Logger

	mu      sync.Mutex
	plugins []*Plugin
	byName  map[string]*Plugin
	stopped bool
}

// New returns a Host that logs through logger (slog.Default() if nil).
// It has no side effects.
func New(logger *slog.Logger) *Host {
	if logger == nil {
		logger = slog.Default()
	}
	return &Host{logger: logger, byName: make(map[string]*Plugin)}
}

// Launch starts the plugin spec describes: launch (or link in), Describe,
// Configure with spec.Config, Start. It returns once the plugin has started,
// or with an error naming the plugin; a plugin that fails to start is
// stopped and not supervised. From then on a crash of the plugin process is
// followed by a restart with backoff, until Stop.
func (h *Host) Launch(ctx context.Context, spec Spec) (*Plugin, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil, fmt.Errorf("plugin %s: %w: the host is stopped", spec.Name, ErrPluginStopped)
	}
	if _, dup := h.byName[spec.Name]; dup {
		h.mu.Unlock()
		return nil, fmt.Errorf("plugin %s: %w: a plugin with this name is already running", spec.Name, ErrInvalidSpec)
	}
	p := newPlugin(spec, h.logger.With("plugin", spec.Name))
	h.byName[spec.Name] = p // reserve the name while starting
	h.mu.Unlock()

	if err := p.start(ctx); err != nil {
		h.mu.Lock()
		delete(h.byName, spec.Name)
		h.mu.Unlock()
		return nil, err
	}
	h.mu.Lock()
	if h.stopped { // Stop ran while this plugin was starting
		delete(h.byName, spec.Name)
		h.mu.Unlock()
		_ = p.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("plugin %s: %w: the host stopped while it was starting", spec.Name, ErrPluginStopped)
	}
	h.plugins = append(h.plugins, p)
	h.mu.Unlock()
	return p, nil
}

// Plugin returns the running plugin named name.
func (h *Host) Plugin(name string) (*Plugin, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.plugins {
		if p.spec.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Plugins lists the plugins in launch order.
func (h *Host) Plugins() []*Plugin {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.plugins)
}

// Stop stops every plugin, in the reverse of launch order, each with its
// own StopTimeout (and ctx). It is idempotent; Launch fails after it.
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	ps := slices.Clone(h.plugins)
	h.mu.Unlock()
	var errs []error
	for _, p := range slices.Backward(ps) {
		if err := p.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget drops a stopped plugin from the host so that its name can be
// launched again.
func (h *Host) forget(p *Plugin) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.byName, p.spec.Name)
	h.plugins = slices.DeleteFunc(h.plugins, func(q *Plugin) bool { return q == p })
}
