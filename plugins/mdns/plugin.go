package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/skein-p2p/skein/sdk"
)

// ID is the plugin's namespaced identifier.
const ID = "discovery.mdns"

// Version is the plugin's version.
const Version = "1.0.0"

// Plugin is the mDNS discovery plugin: an sdk.Plugin, sdk.Discovery and
// sdk.StatusReporter.
type Plugin struct {
	logger *slog.Logger

	mu  sync.Mutex
	cfg Config
	eng *engine // nil unless started
}

var (
	_ sdk.Plugin         = (*Plugin)(nil)
	_ sdk.Discovery      = (*Plugin)(nil)
	_ sdk.StatusReporter = (*Plugin)(nil)
)

// Option configures New.
type Option func(*Plugin)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(p *Plugin) {
		if l != nil {
			p.logger = l
		}
	}
}

// New returns an unconfigured plugin with the default config. It has no
// side effects: sockets open in Start.
func New(opts ...Option) *Plugin {
	p := &Plugin{logger: slog.Default(), cfg: DefaultConfig()}
	for _, o := range opts {
		o(p)
	}
	p.logger = p.logger.With("plugin", ID)
	return p
}

// Describe says what the plugin is.
func (p *Plugin) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: ID, Kinds: []sdk.Kind{sdk.KindDiscovery}, Version: Version, ConfigSchema: ConfigSchema()}, nil
}

// Configure checks and takes the config; every problem is a diagnostic
// naming its key. It must come before Start.
func (p *Plugin) Configure(_ context.Context, raw map[string]any) ([]sdk.Diagnostic, error) {
	cfg, diags := ParseConfig(raw)
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			return diags, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.eng != nil {
		return diags, fmt.Errorf("mdns configure: %w: already started", sdk.ErrLifecycle)
	}
	p.cfg = cfg
	return diags, nil
}

// Start opens the multicast sockets and joins the interfaces.
func (p *Plugin) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.eng != nil {
		return fmt.Errorf("mdns start: %w: already started", sdk.ErrLifecycle)
	}
	e := newEngine(p.cfg, p.logger)
	if err := e.start(ctx); err != nil {
		return err
	}
	p.eng = e
	return nil
}

// Stop says goodbye for every advertisement (records with TTL 0), closes
// the sockets and ends every search. Idempotent; safe before Start; a
// later Start starts afresh.
func (p *Plugin) Stop(context.Context) error {
	p.mu.Lock()
	e := p.eng
	p.eng = nil
	p.mu.Unlock()
	if e != nil {
		e.stop()
	}
	return nil
}

func (p *Plugin) engine(op string) (*engine, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.eng == nil {
		return nil, fmt.Errorf("mdns %s: %w: not started", op, sdk.ErrLifecycle)
	}
	return p.eng, nil
}

// Advertise announces self under namespace on every interface until ctx
// ends: on each interface only self's addresses a host there can dial
// (see the package doc), and only its peer id besides.
func (p *Plugin) Advertise(ctx context.Context, namespace string, self sdk.PeerInfo) error {
	if !wellFormedID(self.ID) {
		return fmt.Errorf("mdns advertise: %w: peer id must be 1 to %d printable characters", sdk.ErrInvalidArgument, maxPeerID)
	}
	e, err := p.engine("advertise")
	if err != nil {
		return err
	}
	return e.advertise(ctx, namespace, self)
}

// FindPeers searches namespace until ctx ends, streaming the peers found
// (each again every query interval while it is still announced).
func (p *Plugin) FindPeers(ctx context.Context, namespace string) (<-chan sdk.PeerInfo, error) {
	e, err := p.engine("find peers")
	if err != nil {
		return nil, err
	}
	return e.findPeers(ctx, namespace)
}

// Status reports the interfaces in use and what the plugin counted.
func (p *Plugin) Status(context.Context) (sdk.Status, error) {
	e, err := p.engine("status")
	if err != nil {
		return sdk.Status{Healthy: false, Message: "not started"}, nil
	}
	return e.status(), nil
}
