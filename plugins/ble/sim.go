package ble

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// The simulated radio (driver "sim").
//
// Devices live on a medium (an Air, by name, in one process). A device
// hears another when both are on the medium and the distance between
// their positions is within both devices' range (range 0: everywhere).
// What is modelled:
//   - advertisements of at most 31 bytes, heard every advertise interval;
//   - an identity read (a GATT connection and a read): 4 latencies;
//   - links (L2CAP LE credit-based channels): a connection costs 3
//     latencies; packets of at most the MTU; each direction sends at the
//     bandwidth (bytes/s, 0: unlimited) and delivers after the latency,
//     in order, with a window of credits (the receiver grants one per
//     packet read, so a reader that stops holds the writer back);
//   - loss, as a radio's link layer sees it: a lost packet is sent again
//     after a retransmission delay (the later ones wait: links are
//     reliable and ordered, as L2CAP is);
//   - a link limit per device; links break when a device moves out of
//     range or leaves the medium.
//
// Loss decisions come from a generator per direction of each link,
// seeded from the medium's seed and the two addresses, so a run's losses
// do not depend on what other links do.

// SimParams are one simulated device's radio figures.
type SimParams struct {
	// MTU is the largest packet on a link (23, 185 and 517 are what
	// phones offer as ATT MTUs). Default 185.
	MTU int
	// Bandwidth is each direction's throughput in bytes per second; 0
	// means unlimited. Default 31250 (250 kbit/s).
	Bandwidth int64
	// Latency is the one-way delay of a packet. Default 10 ms.
	Latency time.Duration
	// Loss is the probability that a packet must be sent again, [0, 1).
	Loss float64
	// Range is how far the radio reaches (same unit as positions); 0:
	// every device on the medium.
	Range float64
	// X and Y are the device's position.
	X, Y float64
	// AdvertiseInterval is how often advertisements are heard. Default
	// 100 ms.
	AdvertiseInterval time.Duration
	// MaxLinks caps the device's links (both directions). Default 8.
	MaxLinks int
	// NoChannels makes the device refuse L2CAP channels, as some phones
	// do: a dialler with GATTFallback then carries the link over a GATT
	// byte stream (ATT MTU at most 185, notifications that may arrive
	// out of order, a quarter of the bandwidth).
	NoChannels bool
	// GATTFallback lets this device fall back to a GATT byte stream when
	// the peer refuses channels.
	GATTFallback bool
	// GATTOnly makes this device dial over the GATT byte stream always.
	GATTOnly bool
}

// Defaults of the simulated radio.
const (
	DefaultSimMTU               = 185
	DefaultSimBandwidth         = 31250
	DefaultSimLatency           = 10 * time.Millisecond
	DefaultSimAdvertiseInterval = 100 * time.Millisecond
	DefaultSimMaxLinks          = 8
)

// DefaultSimParams returns the figures every unset one takes.
func DefaultSimParams() SimParams {
	return SimParams{MTU: DefaultSimMTU, Bandwidth: DefaultSimBandwidth, Latency: DefaultSimLatency,
		AdvertiseInterval: DefaultSimAdvertiseInterval, MaxLinks: DefaultSimMaxLinks, GATTFallback: true}
}

// simWindow is the credits of one direction of a link, in packets.
const simWindow = 16

// Air is a simulated radio medium: the devices on it and where they are.
type Air struct {
	name string

	mu      sync.Mutex
	seed    uint64
	devices map[string]*simDevice
	auto    int

	carried atomic.Int64 // bytes of packets sent on links, both ways
}

// Carried is how many bytes of packets (frame headers included) links of
// the medium have sent, in all: what the bandwidth bounds.
func (a *Air) Carried() int64 { return a.carried.Load() }

var airs struct {
	sync.Mutex
	m map[string]*Air
}

// SimAir returns the medium called name, made on first use. Devices of
// plugins configured with sim_medium: name live on it.
func SimAir(name string) *Air {
	airs.Lock()
	defer airs.Unlock()
	if airs.m == nil {
		airs.m = map[string]*Air{}
	}
	a := airs.m[name]
	if a == nil {
		a = &Air{name: name, seed: 1, devices: map[string]*simDevice{}}
		airs.m[name] = a
	}
	return a
}

// SetSeed seeds the loss generators of links made from now on.
func (a *Air) SetSeed(seed uint64) {
	a.mu.Lock()
	a.seed = seed
	a.mu.Unlock()
}

// Devices lists the devices on the medium, sorted.
func (a *Air) Devices() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for n := range a.devices {
			if !yield(n) {
				return
			}
		}
	})
}

// Move puts device at (x, y); links that are now out of range break.
func (a *Air) Move(device string, x, y float64) error {
	a.mu.Lock()
	d := a.devices[device]
	if d == nil {
		a.mu.Unlock()
		return fmt.Errorf("move %s: %w", device, ErrOutOfRange)
	}
	d.params.X, d.params.Y = x, y
	var broken []*simLink
	for _, d2 := range a.devices {
		for l := range d2.links {
			if !a.hearsLocked(l.a.dev, l.b.dev) {
				broken = append(broken, l)
			}
		}
	}
	a.mu.Unlock()
	for _, l := range broken {
		l.breakWith(ErrOutOfRange)
	}
	return nil
}

// hearsLocked: x and y hear each other. Hold a.mu.
func (a *Air) hearsLocked(x, y *simDevice) bool {
	if x == y {
		return true
	}
	if a.devices[x.name] != x || a.devices[y.name] != y {
		return false
	}
	d := math.Hypot(x.params.X-y.params.X, x.params.Y-y.params.Y)
	for _, r := range []float64{x.params.Range, y.params.Range} {
		if r > 0 && d > r {
			return false
		}
	}
	return true
}

var simNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// simDevice is one device on the air: the sim Driver.
type simDevice struct {
	air    *Air
	name   string // "" until Start when auto
	params SimParams

	// guarded by air.mu
	started   bool
	adv, id   []byte
	advCancel context.CancelFunc
	advGen    int
	listeners map[int]*simListener
	nextPSM   int
	links     map[*simLink]bool
	linkCount int
}

var _ Driver = (*simDevice)(nil)

// newSimDriver makes a device for medium (name "" picks one at Start).
func newSimDriver(medium, name string, p SimParams) *simDevice {
	return &simDevice{air: SimAir(medium), name: name, params: p}
}

func (d *simDevice) Start(context.Context) error {
	a := d.air
	a.mu.Lock()
	defer a.mu.Unlock()
	if d.started {
		return fmt.Errorf("sim start: %w: already started", sdk.ErrLifecycle)
	}
	if d.name == "" {
		for {
			a.auto++
			n := fmt.Sprintf("sim-%d", a.auto)
			if a.devices[n] == nil {
				d.name = n
				break
			}
		}
	}
	if a.devices[d.name] != nil {
		return fmt.Errorf("sim start: device %q is already on medium %q", d.name, a.name)
	}
	a.devices[d.name] = d
	d.started = true
	d.listeners = map[int]*simListener{}
	d.links = map[*simLink]bool{}
	d.nextPSM = 0x80
	return nil
}

func (d *simDevice) Close() error {
	a := d.air
	a.mu.Lock()
	if !d.started {
		a.mu.Unlock()
		return nil
	}
	d.started = false
	if a.devices[d.name] == d {
		delete(a.devices, d.name)
	}
	ls := make([]*simListener, 0, len(d.listeners))
	for _, l := range d.listeners {
		ls = append(ls, l)
	}
	links := make([]*simLink, 0, len(d.links))
	for l := range d.links {
		links = append(links, l)
	}
	if d.advCancel != nil {
		d.advCancel()
	}
	a.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	for _, l := range links {
		l.breakWith(ErrOutOfRange)
	}
	return nil
}

func (d *simDevice) Device() string {
	d.air.mu.Lock()
	defer d.air.mu.Unlock()
	return d.name
}

func (d *simDevice) Profile() sdk.PacketProfile {
	return sdk.PacketProfile{MTU: d.params.MTU, Bandwidth: d.params.Bandwidth, Latency: d.params.Latency}
}

// parseSimAddr splits "device@psm".
func parseSimAddr(addr string) (string, int, error) {
	dev, p, ok := strings.Cut(addr, "@")
	psm, err := strconv.Atoi(p)
	if !ok || err != nil || psm < 1 || psm > 0xFFFF || !simNameRE.MatchString(dev) || strconv.Itoa(psm) != p {
		return "", 0, fmt.Errorf("%w %q: want device@psm", ErrBadAddress, addr)
	}
	return dev, psm, nil
}

func (d *simDevice) Listen(_ context.Context, addr string) (LinkListener, error) {
	a := d.air
	a.mu.Lock()
	defer a.mu.Unlock()
	if !d.started {
		return nil, fmt.Errorf("sim listen: %w", ErrClosed)
	}
	psm := 0
	if addr != "" && addr != "auto" {
		dev, p, err := parseSimAddr(addr)
		if err != nil {
			return nil, err
		}
		if dev != d.name {
			return nil, fmt.Errorf("sim listen %s: %w: not this device (%s)", addr, ErrBadAddress, d.name)
		}
		if d.listeners[p] != nil {
			return nil, fmt.Errorf("sim listen %s: psm in use", addr)
		}
		psm = p
	} else {
		// Dynamic LE PSMs, 0x80..0xFF, handed out in turn so that a
		// closed channel's number is not reused at once.
		for range 0x80 {
			p := d.nextPSM
			d.nextPSM++
			if d.nextPSM > 0xFF {
				d.nextPSM = 0x80
			}
			if d.listeners[p] == nil {
				psm = p
				break
			}
		}
		if psm == 0 {
			return nil, errors.New("sim listen: every dynamic psm is in use")
		}
	}
	l := &simListener{dev: d, psm: psm, addr: fmt.Sprintf("%s@%d", d.name, psm),
		backlog: make(chan *simEnd, 16), done: make(chan struct{})}
	d.listeners[psm] = l
	return l, nil
}

func (d *simDevice) Dial(ctx context.Context, addr string) (Link, error) {
	dev, psm, err := parseSimAddr(addr)
	if err != nil {
		return nil, err
	}
	a := d.air
	a.mu.Lock()
	lat := d.params.Latency
	if t := a.devices[dev]; t != nil {
		lat = max(lat, t.params.Latency)
	}
	a.mu.Unlock()
	// Connection request, L2CAP credit-based connection request and
	// response.
	if err := sleepCtx(ctx, 3*lat); err != nil {
		return nil, err
	}
	a.mu.Lock()
	t := a.devices[dev]
	switch {
	case !d.started:
		a.mu.Unlock()
		return nil, fmt.Errorf("sim dial: %w", ErrClosed)
	case t == nil || !a.hearsLocked(d, t):
		a.mu.Unlock()
		return nil, fmt.Errorf("sim dial %s: %w", addr, ErrOutOfRange)
	case t.listeners[psm] == nil:
		a.mu.Unlock()
		return nil, fmt.Errorf("sim dial %s: %w", addr, ErrRefused)
	case (t.params.NoChannels || d.params.NoChannels) && !d.params.GATTFallback:
		a.mu.Unlock()
		return nil, fmt.Errorf("sim dial %s: %w: L2CAP channels refused and no GATT fallback", addr, ErrRefused)
	}
	gatt := t.params.NoChannels || d.params.NoChannels || d.params.GATTOnly
	need := map[*simDevice]int{d: 1}
	need[t]++
	for dv, n := range need {
		if dv.linkCount+n > dv.params.MaxLinks {
			a.mu.Unlock()
			return nil, fmt.Errorf("sim dial %s: %w (%s has %d)", addr, ErrLinkLimit, dv.name, dv.linkCount)
		}
	}
	l := t.listeners[psm]
	d.nextPSM++ // the dialler's own channel id, for its address
	link := newSimLink(a.seed, d, t, fmt.Sprintf("%s@%d", d.name, 0x80+(d.nextPSM%0x80)), l.addr)
	if gatt {
		link = newSimGATTLink(a.seed, d, t, fmt.Sprintf("%s@gatt", d.name), l.addr)
	}
	select {
	case l.backlog <- link.b:
	default:
		a.mu.Unlock()
		return nil, fmt.Errorf("sim dial %s: %w: backlog full", addr, ErrRefused)
	}
	d.linkCount++
	t.linkCount++
	d.links[link] = true
	t.links[link] = true
	a.mu.Unlock()
	if gatt {
		return dialGATTOverLink(ctx, link.a, uint16(psm), slog.Default())
	}
	return link.a, nil
}

func (d *simDevice) Advertise(ctx context.Context, adv, identity []byte) error {
	if len(adv) > MaxAdvertisement {
		return fmt.Errorf("%w: %d bytes", ErrAdvertisementSize, len(adv))
	}
	if len(identity) > MaxIdentity {
		return fmt.Errorf("sim advertise: identity of %d bytes, at most %d", len(identity), MaxIdentity)
	}
	a := d.air
	a.mu.Lock()
	defer a.mu.Unlock()
	if !d.started {
		return fmt.Errorf("sim advertise: %w", ErrClosed)
	}
	if d.advCancel != nil {
		d.advCancel()
	}
	actx, cancel := context.WithCancel(ctx)
	d.advGen++
	gen := d.advGen
	d.adv, d.id, d.advCancel = slices.Clone(adv), slices.Clone(identity), cancel
	go func() {
		<-actx.Done()
		a.mu.Lock()
		if d.advGen == gen {
			d.adv, d.id, d.advCancel = nil, nil, nil
		}
		a.mu.Unlock()
	}()
	return nil
}

func (d *simDevice) Scan(ctx context.Context) (<-chan Advertisement, error) {
	a := d.air
	a.mu.Lock()
	started := d.started
	a.mu.Unlock()
	if !started {
		return nil, fmt.Errorf("sim scan: %w", ErrClosed)
	}
	out := make(chan Advertisement, 64)
	go func() {
		defer close(out)
		t := time.NewTicker(d.params.AdvertiseInterval)
		defer t.Stop()
		for {
			var heard []Advertisement
			a.mu.Lock()
			if !d.started {
				a.mu.Unlock()
				return
			}
			for _, o := range a.devices {
				if o != d && o.adv != nil && a.hearsLocked(d, o) {
					heard = append(heard, Advertisement{Device: o.name, Data: slices.Clone(o.adv)})
				}
			}
			a.mu.Unlock()
			slices.SortFunc(heard, func(x, y Advertisement) int { return strings.Compare(x.Device, y.Device) })
			for _, h := range heard {
				select {
				case out <- h:
				case <-ctx.Done():
					return
				default: // a scanner that does not keep up misses some
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return out, nil
}

func (d *simDevice) ReadIdentity(ctx context.Context, device string) ([]byte, error) {
	a := d.air
	a.mu.Lock()
	lat := d.params.Latency
	a.mu.Unlock()
	// Connect, exchange MTUs, discover the service, read.
	if err := sleepCtx(ctx, 4*lat); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.devices[device]
	if t == nil || !a.hearsLocked(d, t) {
		return nil, fmt.Errorf("sim read identity of %s: %w", device, ErrOutOfRange)
	}
	if t.id == nil {
		return nil, fmt.Errorf("sim read identity of %s: %w: not advertising", device, ErrRefused)
	}
	return slices.Clone(t.id), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// simListener is a listening channel.
type simListener struct {
	dev     *simDevice
	psm     int
	addr    string
	backlog chan *simEnd
	done    chan struct{}
	once    sync.Once
}

func (l *simListener) Accept(ctx context.Context) (Link, error) {
	select {
	case e := <-l.backlog:
		if e.link.gatt {
			return acceptGATTOverLink(ctx, e, slog.Default())
		}
		return e, nil
	case <-l.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *simListener) Addr() string { return l.addr }

func (l *simListener) Close() error {
	l.once.Do(func() {
		a := l.dev.air
		a.mu.Lock()
		if l.dev.listeners[l.psm] == l {
			delete(l.dev.listeners, l.psm)
		}
		a.mu.Unlock()
		close(l.done)
		for {
			select {
			case e := <-l.backlog:
				e.link.breakWith(ErrRefused)
			default:
				return
			}
		}
	})
	return nil
}

// simLink is one link: two ends and a pipe each way.
type simLink struct {
	a, b *simEnd
	gatt bool // the GATT fallback: packets may come out of order
	done chan struct{}
	once sync.Once
	err  error // why it broke; set before done closes
}

type simEnd struct {
	link          *simLink
	dev           *simDevice
	local, remote string
	remoteDev     string
	mtu           int
	out, in       *simPipe
	closed        chan struct{}
	closeOnce     sync.Once
}

type simPkt struct {
	data []byte
	at   time.Time
}

// simPipe is one direction of a link.
type simPipe struct {
	unordered bool
	swapped   atomic.Int64 // packets delivered out of order
	bw        int64
	lat       time.Duration
	loss      float64
	credits   chan struct{} // one per packet in flight or unread
	q         chan simPkt   // in flight
	rx        chan []byte   // delivered, unread

	mu       sync.Mutex
	rng      *rand.Rand
	nextFree time.Time
	lastAt   time.Time
}

func newSimLink(seed uint64, from, to *simDevice, fromAddr, toAddr string) *simLink {
	return makeSimLink(seed, from, to, fromAddr, toAddr, false)
}

// newSimGATTLink is the fallback: a GATT byte stream (writes one way,
// notifications the other) whose packets may come out of order.
func newSimGATTLink(seed uint64, from, to *simDevice, fromAddr, toAddr string) *simLink {
	return makeSimLink(seed, from, to, fromAddr, toAddr, true)
}

func makeSimLink(seed uint64, from, to *simDevice, fromAddr, toAddr string, gatt bool) *simLink {
	mtu := min(from.params.MTU, to.params.MTU)
	bw := from.params.Bandwidth
	if to.params.Bandwidth > 0 && (bw == 0 || to.params.Bandwidth < bw) {
		bw = to.params.Bandwidth
	}
	lat := max(from.params.Latency, to.params.Latency)
	loss := max(from.params.Loss, to.params.Loss)
	if gatt {
		mtu = min(mtu, 185)
		if bw > 0 {
			bw = max(bw/4, 1)
		}
	}
	l := &simLink{done: make(chan struct{}), gatt: gatt}
	pipe := func(src, dst string) *simPipe {
		h := fnv.New64a()
		_, _ = fmt.Fprintf(h, "%s>%s", src, dst)
		p := &simPipe{bw: bw, lat: lat, loss: loss, unordered: gatt, credits: make(chan struct{}, simWindow),
			q: make(chan simPkt, simWindow), rx: make(chan []byte, simWindow),
			rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
		go p.run(l.done)
		return p
	}
	ab, ba := pipe(fromAddr, toAddr), pipe(toAddr, fromAddr)
	l.a = &simEnd{link: l, dev: from, local: fromAddr, remote: toAddr, remoteDev: to.name, mtu: mtu, out: ab, in: ba, closed: make(chan struct{})}
	l.b = &simEnd{link: l, dev: to, local: toAddr, remote: fromAddr, remoteDev: from.name, mtu: mtu, out: ba, in: ab, closed: make(chan struct{})}
	return l
}

// run delivers the packets in flight when their time comes.
func (p *simPipe) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case pkt := <-p.q:
			if err := sleepUntil(done, pkt.at); err != nil {
				return
			}
			if p.unordered {
				// A notification overtaken by the next one, as D-Bus
				// signals delivered from goroutines of their own are.
				select {
				case next := <-p.q:
					p.mu.Lock()
					swap := p.rng.Float64() < 0.3
					p.mu.Unlock()
					if swap {
						p.swapped.Add(1)
						pkt, next = next, pkt
					}
					p.rx <- pkt.data
					if err := sleepUntil(done, next.at); err != nil {
						return
					}
					p.rx <- next.data
					continue
				default:
				}
			}
			p.rx <- pkt.data // never blocks: credits bound q and rx together
		}
	}
}

func sleepUntil(done <-chan struct{}, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return ErrClosed
	case <-t.C:
		return nil
	}
}

// retransmitDelay is what one lost packet costs: a connection event.
func (p *simPipe) retransmitDelay() time.Duration { return max(p.lat, 7500*time.Microsecond) }

// breakWith ends the link for both ends.
func (l *simLink) breakWith(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
		for _, e := range []*simEnd{l.a, l.b} {
			a := e.dev.air
			a.mu.Lock()
			if e.dev.links[l] {
				delete(e.dev.links, l)
			}
			e.dev.linkCount--
			a.mu.Unlock()
		}
	})
}

func (e *simEnd) ReadPacket() ([]byte, error) {
	select {
	case p := <-e.in.rx:
		<-e.in.credits
		return p, nil
	case <-e.closed:
		return nil, ErrClosed
	case <-e.link.done:
	}
	select { // what was delivered before the link ended
	case p := <-e.in.rx:
		<-e.in.credits
		return p, nil
	default:
	}
	if errors.Is(e.link.err, io.EOF) {
		return nil, io.EOF
	}
	return nil, e.link.err
}

func (e *simEnd) WritePacket(p []byte, deadline time.Time) error {
	if len(p) > e.mtu {
		return fmt.Errorf("sim write: %d bytes, MTU %d", len(p), e.mtu)
	}
	var timer <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-e.closed:
		return ErrClosed
	case <-e.link.done:
		return e.link.err
	default:
	}
	select {
	case e.out.credits <- struct{}{}:
	case <-e.closed:
		return ErrClosed
	case <-e.link.done:
		return e.link.err
	case <-timer:
		return os.ErrDeadlineExceeded
	}
	o := e.out
	o.mu.Lock()
	now := time.Now()
	start := now
	if o.nextFree.After(start) {
		start = o.nextFree
	}
	var tx time.Duration
	if o.bw > 0 {
		tx = time.Duration(float64(len(p)) / float64(o.bw) * float64(time.Second))
	}
	o.nextFree = start.Add(tx)
	at := o.nextFree.Add(o.lat)
	for i := 0; i < 16 && o.loss > 0 && o.rng.Float64() < o.loss; i++ {
		at = at.Add(o.retransmitDelay())
	}
	if at.Before(o.lastAt) {
		at = o.lastAt
	}
	o.lastAt = at
	o.mu.Unlock()
	e.dev.air.carried.Add(int64(len(p)))
	o.q <- simPkt{data: slices.Clone(p), at: at}
	return nil
}

func (e *simEnd) MTU() int             { return e.mtu }
func (e *simEnd) Ordered() bool        { return !e.link.gatt }
func (e *simEnd) LocalAddr() string    { return e.local }
func (e *simEnd) RemoteAddr() string   { return e.remote }
func (e *simEnd) RemoteDevice() string { return e.remoteDev }

// Close ends the link: the peer reads what was delivered, then io.EOF;
// packets still in flight are dropped, as an L2CAP channel drops them.
func (e *simEnd) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		e.link.breakWith(io.EOF)
	})
	return nil
}
