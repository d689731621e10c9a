package ble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// ID is the plugin's namespaced identifier.
const ID = "transport.ble"

// Version is the plugin's version.
const Version = "1.0.0"

// Protocol is the multiaddr protocol the transport registers: an address
// is /x-ble/<device>@<channel>.
const Protocol = "x-ble"

// Plugin is the BLE plugin: an sdk.Transport (with the sdk.PacketTransport
// profile), an sdk.Discovery of the peers its radio hears, and an
// sdk.StatusReporter.
type Plugin struct {
	logger *slog.Logger

	mu        sync.Mutex
	cfg       Config
	drv       Driver // nil unless started
	links     int
	byDevice  map[string]int // live links by remote device
	listeners map[*listener]bool
	backoff   map[string]backoffState
	stats     stats
	self      string // the peer id last advertised
}

type backoffState struct {
	until time.Time
	wait  time.Duration
}

// stats are what Status reports.
type stats struct {
	dials, dialFailures, accepted, refusedAtCap int
	devicesDropped, handshakesDeferred          int
	badAdverts, badIdentities, handshakeFails   int
	peersFound                                  int
	devicesHeard                                int // most devices one search remembered
}

var (
	_ sdk.Plugin          = (*Plugin)(nil)
	_ sdk.Transport       = (*Plugin)(nil)
	_ sdk.PacketTransport = (*Plugin)(nil)
	_ sdk.Discovery       = (*Plugin)(nil)
	_ sdk.StatusReporter  = (*Plugin)(nil)
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
// side effects: the radio is opened in Start.
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
	return sdk.Description{ID: ID, Kinds: []sdk.Kind{sdk.KindTransport, sdk.KindDiscovery}, Version: Version,
		ConfigSchema: ConfigSchema()}, nil
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
	if p.drv != nil {
		return diags, fmt.Errorf("ble configure: %w: already started", sdk.ErrLifecycle)
	}
	p.cfg = cfg
	return diags, nil
}

// newDriver makes the configured driver.
func newDriver(cfg Config, logger *slog.Logger) (Driver, error) {
	switch cfg.Driver {
	case "sim":
		if cfg.SimHub != "" {
			return newHubDriver(cfg.SimHub, cfg.SimMedium, cfg.SimDevice, cfg.Sim, cfg.SimSeed), nil
		}
		d := newSimDriver(cfg.SimMedium, cfg.SimDevice, cfg.Sim)
		if cfg.SimSeed != 0 {
			d.air.SetSeed(cfg.SimSeed)
		}
		return d, nil
	case "bluez":
		return newBlueZDriver(cfg, logger)
	}
	return nil, fmt.Errorf("ble: unknown driver %q", cfg.Driver)
}

// Start opens the radio.
func (p *Plugin) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drv != nil {
		return fmt.Errorf("ble start: %w: already started", sdk.ErrLifecycle)
	}
	d, err := newDriver(p.cfg, p.logger)
	if err != nil {
		return fmt.Errorf("ble start: %w", err)
	}
	if err := d.Start(ctx); err != nil {
		_ = d.Close()
		return fmt.Errorf("ble start (driver %s): %w", p.cfg.Driver, err)
	}
	p.drv = d
	p.byDevice = map[string]int{}
	p.listeners = map[*listener]bool{}
	p.backoff = map[string]backoffState{}
	p.links = 0
	p.logger.Info("ble radio started", "driver", p.cfg.Driver, "device", d.Device())
	return nil
}

// Stop closes every listener and the radio, which ends every link.
// Idempotent; safe before Start; a later Start starts afresh.
func (p *Plugin) Stop(context.Context) error {
	p.mu.Lock()
	d := p.drv
	p.drv = nil
	ls := p.listeners
	p.listeners = nil
	p.mu.Unlock()
	for l := range ls {
		_ = l.ll.Close()
	}
	if d != nil {
		return d.Close()
	}
	return nil
}

func (p *Plugin) driver(op string) (Driver, Config, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drv == nil {
		return nil, p.cfg, fmt.Errorf("ble %s: %w: not started", op, sdk.ErrLifecycle)
	}
	return p.drv, p.cfg, nil
}

// Protocol is the multiaddr protocol name.
func (p *Plugin) Protocol() string { return Protocol }

// PacketProfile reports the radio's figures: the largest payload of one
// packet (the link MTU less the frame header), throughput and latency.
func (p *Plugin) PacketProfile() sdk.PacketProfile {
	p.mu.Lock()
	d, cfg := p.drv, p.cfg
	p.mu.Unlock()
	var prof sdk.PacketProfile
	switch {
	case d != nil:
		prof = d.Profile()
	case cfg.Driver == "sim":
		prof = sdk.PacketProfile{MTU: cfg.Sim.MTU, Bandwidth: cfg.Sim.Bandwidth, Latency: cfg.Sim.Latency}
	default:
		prof = sdk.PacketProfile{MTU: cfg.ChannelMTU}
	}
	prof.MTU = max(prof.MTU-frameHeader, 0)
	return prof
}

// Listen opens a channel for inbound links. addr is "" or "auto" (a
// channel the driver picks), or an address of this device.
func (p *Plugin) Listen(ctx context.Context, addr string) (sdk.Listener, error) {
	d, _, err := p.driver("listen")
	if err != nil {
		return nil, err
	}
	ll, err := d.Listen(ctx, addr)
	if err != nil {
		if errors.Is(err, ErrBadAddress) {
			err = fmt.Errorf("%w: %w", sdk.ErrInvalidArgument, err)
		}
		return nil, fmt.Errorf("ble listen %q: %w", addr, err)
	}
	l := &listener{p: p, ll: ll}
	p.mu.Lock()
	if p.listeners == nil { // stopped meanwhile
		p.mu.Unlock()
		_ = ll.Close()
		return nil, fmt.Errorf("ble listen: %w: stopped", sdk.ErrLifecycle)
	}
	p.listeners[l] = true
	p.mu.Unlock()
	return l, nil
}

// listenAddr is the address of the oldest listener still open, "" if none.
func (p *Plugin) listenAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *listener
	for l := range p.listeners {
		if best == nil || l.ll.Addr() < best.ll.Addr() {
			best = l
		}
	}
	if best == nil {
		return ""
	}
	return best.ll.Addr()
}

// takeLink reserves a link slot for device; false at the cap.
func (p *Plugin) takeLink(device string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.links >= p.cfg.MaxLinks {
		return false
	}
	p.links++
	if device != "" {
		p.byDevice[device]++
	}
	return true
}

func (p *Plugin) releaseLink(device string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.links--
	if device != "" {
		if p.byDevice[device]--; p.byDevice[device] <= 0 {
			delete(p.byDevice, device)
		}
	}
}

// linkedTo reports whether a link to or from device is up.
func (p *Plugin) linkedTo(device string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byDevice[device] > 0
}

// Dial opens a link to a listener's address. A dial to an address whose
// last dial failed fails at once (ErrBackoff) until its backoff is over.
func (p *Plugin) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d, cfg, err := p.driver("dial")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p.mu.Lock()
	b := p.backoff[addr]
	p.stats.dials++
	p.mu.Unlock()
	if now.Before(b.until) {
		return nil, fmt.Errorf("ble dial %s: %w (%s left)", addr, ErrBackoff, b.until.Sub(now).Round(time.Millisecond))
	}
	device, _, _ := cutAddr(addr)
	if !p.takeLink(device) {
		return nil, fmt.Errorf("ble dial %s: %w (max_links %d)", addr, ErrLinkLimit, cfg.MaxLinks)
	}
	link, err := d.Dial(ctx, addr)
	if err != nil {
		p.releaseLink(device)
		if errors.Is(err, ErrBadAddress) {
			return nil, fmt.Errorf("ble dial %q: %w: %w", addr, sdk.ErrInvalidArgument, err)
		}
		if ctx.Err() == nil {
			p.failed(addr, cfg)
		}
		return nil, fmt.Errorf("ble dial %s: %w", addr, err)
	}
	p.mu.Lock()
	delete(p.backoff, addr)
	p.mu.Unlock()
	return newConn(link, p.logger, cfg.StallTimeout, func() { p.releaseLink(device) }), nil
}

// failed records a failed dial to addr and its next backoff.
func (p *Plugin) failed(addr string, cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.dialFailures++
	b := p.backoff[addr]
	if b.wait == 0 {
		b.wait = cfg.DialBackoff
	} else {
		b.wait = min(2*b.wait, cfg.DialBackoffMax)
	}
	b.until = time.Now().Add(b.wait)
	if len(p.backoff) >= 4*cfg.MaxDevices {
		for a, o := range p.backoff {
			if time.Now().After(o.until) {
				delete(p.backoff, a)
			}
		}
	}
	if len(p.backoff) < 4*cfg.MaxDevices {
		p.backoff[addr] = b
	}
}

// cutAddr splits "<device>@<channel>".
func cutAddr(addr string) (device string, channel int, ok bool) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == '@' {
			c, err := strconv.Atoi(addr[i+1:])
			return addr[:i], c, err == nil
		}
	}
	return addr, 0, false
}

// listener is an sdk.Listener over a driver's LinkListener.
type listener struct {
	p  *Plugin
	ll LinkListener
}

// Accept waits for an inbound link; one beyond max_links is closed at
// once (and logged).
func (l *listener) Accept(ctx context.Context) (net.Conn, error) {
	for {
		link, err := l.ll.Accept(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, net.ErrClosed
			}
			return nil, err
		}
		device := link.RemoteDevice()
		if !l.p.takeLink(device) {
			l.p.mu.Lock()
			l.p.stats.refusedAtCap++
			max := l.p.cfg.MaxLinks
			l.p.mu.Unlock()
			l.p.logger.Warn("ble inbound link refused: at max_links", "peer", device, "max_links", max)
			_ = link.Close()
			continue
		}
		l.p.mu.Lock()
		l.p.stats.accepted++
		stall := l.p.cfg.StallTimeout
		l.p.mu.Unlock()
		return newConn(link, l.p.logger, stall, func() { l.p.releaseLink(device) }), nil
	}
}

func (l *listener) Addr() string { return l.ll.Addr() }

func (l *listener) Close() error {
	l.p.mu.Lock()
	delete(l.p.listeners, l)
	l.p.mu.Unlock()
	return l.ll.Close()
}

// Status reports the radio, links and what the plugin refused.
func (p *Plugin) Status(context.Context) (sdk.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drv == nil {
		return sdk.Status{Healthy: false, Message: "not started"}, nil
	}
	s := p.stats
	return sdk.Status{Healthy: true, Message: fmt.Sprintf("driver %s, device %s, %d links", p.cfg.Driver, p.drv.Device(), p.links),
		Details: map[string]string{
			"driver": p.cfg.Driver, "device": p.drv.Device(), "links": strconv.Itoa(p.links),
			"dials": strconv.Itoa(s.dials), "dial_failures": strconv.Itoa(s.dialFailures),
			"accepted": strconv.Itoa(s.accepted), "refused_at_max_links": strconv.Itoa(s.refusedAtCap),
			"peers_found": strconv.Itoa(s.peersFound), "devices_heard": strconv.Itoa(s.devicesHeard), "devices_dropped": strconv.Itoa(s.devicesDropped),
			"handshakes_deferred": strconv.Itoa(s.handshakesDeferred), "handshake_failures": strconv.Itoa(s.handshakeFails),
			"bad_advertisements": strconv.Itoa(s.badAdverts), "bad_identities": strconv.Itoa(s.badIdentities),
		}}, nil
}
