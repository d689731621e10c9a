package ble

import (
	"context"
	"fmt"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Advertise makes this device discoverable under namespace until ctx
// ends: the advertisement (service UUID, hashes of the namespace and of
// self.ID) and the identity characteristic (self.ID and the address of
// this plugin's listener). The transport must listen first (the node
// attaches it to the network before it runs discovery): a device no one
// can dial is not advertised. self.Addrs is not used: what a radio
// neighbour can dial is the listener's channel.
func (p *Plugin) Advertise(ctx context.Context, namespace string, self sdk.PeerInfo) error {
	d, _, err := p.driver("advertise")
	if err != nil {
		return err
	}
	addr := p.listenAddr()
	if addr == "" {
		return fmt.Errorf("ble advertise: %w: no listener; attach the transport to the network (its transports key) first", sdk.ErrLifecycle)
	}
	ident, err := encodeIdentity(namespace, addr, self.ID)
	if err != nil {
		return fmt.Errorf("ble advertise: %w: %w", sdk.ErrInvalidArgument, err)
	}
	if err := d.Advertise(ctx, encodeAdvertisement(namespace, self.ID), ident); err != nil {
		return fmt.Errorf("ble advertise: %w", err)
	}
	p.mu.Lock()
	p.self = self.ID
	p.mu.Unlock()
	p.logger.Info("ble advertising", "device", d.Device(), "addr", addr)
	return nil
}

// FindPeers scans until ctx ends and streams the Skein peers heard
// advertising under namespace, as /x-ble/<addr> peers the node can dial.
// Each is reported again every report_interval while it is heard. Of two
// devices that hear each other only the one with the smaller peer id
// reports (so only it dials); the other reports the peer only when no
// link from it came within tie_break_wait.
func (p *Plugin) FindPeers(ctx context.Context, namespace string) (<-chan sdk.PeerInfo, error) {
	d, cfg, err := p.driver("find peers")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	advs, err := d.Scan(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("ble find peers: %w", err)
	}
	s := &scanner{p: p, d: d, cfg: cfg, ns: nsHash(namespace), devices: map[string]*heard{},
		results: make(chan handshake, 8), out: make(chan sdk.PeerInfo, 16), budget: cfg.HandshakesPerMinute,
		window: time.Now()}
	go func() {
		defer cancel()
		s.run(ctx, advs)
	}()
	return s.out, nil
}

// maxHandshakes bounds the identity reads in flight.
const maxHandshakes = 2

// scanner is one FindPeers: the devices heard, bounded by max_devices.
type scanner struct {
	p   *Plugin
	d   Driver
	cfg Config
	ns  [2]byte

	devices  map[string]*heard
	inFlight int
	results  chan handshake
	out      chan sdk.PeerInfo
	budget   int
	window   time.Time
	lastWarn time.Time
	refused  int
}

// heard is one device heard advertising.
type heard struct {
	lastHeard time.Time
	adv       advInfo
	id        *identity // nil until read, and again when the advertisement changes
	known     time.Time // when id was read
	reading   bool
	failures  int
	nextTry   time.Time
	reported  time.Time
}

type handshake struct {
	device string
	adv    advInfo
	raw    []byte
	err    error
}

func (s *scanner) run(ctx context.Context, advs <-chan Advertisement) {
	defer close(s.out)
	tick := time.NewTicker(s.cfg.ReportInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			for s.inFlight > 0 { // let the readers end
				<-s.results
				s.inFlight--
			}
			return
		case a, ok := <-advs:
			if !ok {
				return
			}
			s.heard(ctx, a)
		case h := <-s.results:
			s.inFlight--
			s.done(ctx, h)
		case <-tick.C:
			s.tick(ctx)
		}
	}
}

func (s *scanner) count(f func(*stats)) {
	s.p.mu.Lock()
	f(&s.p.stats)
	s.p.mu.Unlock()
}

// heard takes one advertisement.
func (s *scanner) heard(ctx context.Context, a Advertisement) {
	info, err := parseAdvertisement(a.Data)
	if err != nil {
		if err != ErrNotSkein {
			s.count(func(st *stats) { st.badAdverts++ })
		}
		return
	}
	if info.ns != s.ns {
		return
	}
	now := time.Now()
	h := s.devices[a.Device]
	if h == nil {
		if len(s.devices) >= s.cfg.MaxDevices {
			s.expire(now)
		}
		if len(s.devices) >= s.cfg.MaxDevices {
			s.count(func(st *stats) { st.devicesDropped++ })
			s.refuse(now)
			return
		}
		h = &heard{}
		s.devices[a.Device] = h
		n := len(s.devices)
		s.count(func(st *stats) { st.devicesHeard = max(st.devicesHeard, n) })
	}
	h.lastHeard = now
	if h.id != nil && h.adv != info {
		h.id = nil // another identity is advertised now: read it again
	}
	h.adv = info
	if h.id != nil || h.reading || now.Before(h.nextTry) || s.inFlight >= maxHandshakes {
		return
	}
	if now.Sub(s.window) >= time.Minute {
		s.window, s.budget = now, s.cfg.HandshakesPerMinute
	}
	if s.budget <= 0 {
		s.count(func(st *stats) { st.handshakesDeferred++ })
		s.refuse(now)
		return
	}
	s.budget--
	h.reading = true
	s.inFlight++
	device := a.Device
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		raw, err := s.d.ReadIdentity(rctx, device)
		s.results <- handshake{device: device, adv: info, raw: raw, err: err}
	}()
}

// refuse logs, at most once per report interval, that devices were
// refused (a crowd of advertisers, real or fake).
func (s *scanner) refuse(now time.Time) {
	s.refused++
	if now.Sub(s.lastWarn) < s.cfg.ReportInterval {
		return
	}
	s.p.logger.Warn("ble: advertisers beyond the limits ignored", "ignored", s.refused,
		"max_devices", s.cfg.MaxDevices, "handshakes_per_minute", s.cfg.HandshakesPerMinute)
	s.lastWarn, s.refused = now, 0
}

// done takes the outcome of an identity read.
func (s *scanner) done(ctx context.Context, hs handshake) {
	h := s.devices[hs.device]
	if h == nil {
		return
	}
	h.reading = false
	now := time.Now()
	var id identity
	err := hs.err
	if err == nil {
		id, err = parseIdentity(hs.raw)
		if err == nil && (id.ns != s.ns || idHash(id.peerID) != hs.adv.id) {
			err = fmt.Errorf("%w: does not match the advertisement", ErrBadIdentity)
		}
		if err != nil {
			s.count(func(st *stats) { st.badIdentities++ })
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.count(func(st *stats) { st.handshakeFails++ })
		h.failures++
		wait := s.cfg.DialBackoff << min(h.failures-1, 10)
		h.nextTry = now.Add(min(wait, s.cfg.DialBackoffMax))
		s.p.logger.Debug("ble identity read failed", "device", hs.device, "err", err, "retry_in", h.nextTry.Sub(now))
		return
	}
	if id.addr == "" {
		return
	}
	h.failures, h.id, h.known = 0, &id, now
	s.count(func(st *stats) { st.peersFound++ })
	s.report(ctx, hs.device, h, now)
}

// report sends the device's peer to the node, as the tie-break allows.
func (s *scanner) report(ctx context.Context, device string, h *heard, now time.Time) {
	s.p.mu.Lock()
	self := s.p.self
	s.p.mu.Unlock()
	if h.id == nil || h.id.peerID == self {
		return
	}
	if self != "" && self > h.id.peerID {
		// The peer dials; only if it has not after the wait does this side.
		if now.Sub(h.known) < s.cfg.TieBreakWait || s.p.linkedTo(device) {
			return
		}
	}
	h.reported = now
	select {
	case s.out <- sdk.PeerInfo{ID: h.id.peerID, Addrs: []string{"/" + Protocol + "/" + h.id.addr}}:
	case <-ctx.Done():
	default: // the node is not reading: it hears again next interval
	}
}

// tick forgets devices no longer heard and reports the others again.
func (s *scanner) tick(ctx context.Context) {
	now := time.Now()
	s.expire(now)
	for dev, h := range s.devices {
		if h.id != nil && now.Sub(h.reported) >= s.cfg.ReportInterval/2 {
			s.report(ctx, dev, h, now)
		}
	}
}

// expire forgets the devices not heard for three report intervals.
func (s *scanner) expire(now time.Time) {
	for dev, h := range s.devices {
		if !h.reading && now.Sub(h.lastHeard) > 3*s.cfg.ReportInterval {
			delete(s.devices, dev)
		}
	}
}
