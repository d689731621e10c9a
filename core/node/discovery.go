package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// DiscoveryNamespace is the namespace Skein nodes advertise themselves
// under by default.
const DiscoveryNamespace = "skein/v1"

// ErrNoNetwork is returned by RunDiscovery when no network plugin runs.
var ErrNoNetwork = errors.New("no network plugin running")

// Discovery tuning. Variables so that tests can shorten them.
var (
	// discoveryRetry is how long a peer whose dial failed is left alone
	// before a new sighting is dialled again, and the window of
	// discoveryDialBudget.
	discoveryRetry = 30 * time.Second
	// discoveryYield is how long the peer with the larger ID waits before
	// dialling a peer it found, so that when both find each other at once
	// only one dials (the smaller ID dials at once).
	discoveryYield = 2 * time.Second
	// discoveryDialTimeout bounds one dial.
	discoveryDialTimeout = 30 * time.Second
	// discoveryMaxDialing bounds the sightings being dialled at once; a
	// sighting beyond it is dropped (the discovery reports the peer again).
	discoveryMaxDialing = 8
	// discoveryDialBudget bounds the dials started per discoveryRetry: a
	// discovery reporting thousands of peers (a hostile LAN) cannot make
	// the node dial more.
	discoveryDialBudget = 32
	// discoveryMaxSeen bounds the peers remembered.
	discoveryMaxSeen = 4096
	// discoveryRestartMin and discoveryRestartMax bound the wait before a
	// discovery whose search ended (its plugin crashed and restarted, say)
	// is started again.
	discoveryRestartMin = time.Second
	discoveryRestartMax = 30 * time.Second
	// discoveryAddrsEvery is how often the network's addresses are looked
	// at; a change is advertised again.
	discoveryAddrsEvery = 30 * time.Second
	// discoveryWarnEvery spaces the warnings about failed dials and
	// dropped sightings.
	discoveryWarnEvery = 30 * time.Second
)

// DiscoverOption configures Discover and RunDiscovery.
type DiscoverOption func(*discoverConfig)

type discoverConfig struct {
	onConnected func(peerID, discovery string)
}

// OnConnected calls f each time a peer a discovery found is connected,
// whoever dialled (this node, or the peer, which found this node too),
// with the name of the discovery. f must not block.
func OnConnected(f func(peerID, discovery string)) DiscoverOption {
	return func(c *discoverConfig) { c.onConnected = f }
}

// Discover advertises this node's network peer (its ID and addresses, as
// the network says; again when they change) under namespace on every
// discovery given, and dials (network.Connect) every peer any of them
// finds, until ctx ends. Sightings are de-duplicated: a peer whose dial
// failed and that is seen again with the same addresses within
// discoveryRetry (30s) is not dialled again, nor while a dial to it is in
// flight; itself and peers already connected are skipped (a connected
// peer is looked at again, at most every second, when sighted: it may
// have restarted). Dials are bounded: at most
// discoveryMaxDialing (8) at once and discoveryDialBudget (32) started
// per 30 s, the rest dropped until the peer is reported again; failures
// and drops are logged at most every 30 s. A discovery whose search ends
// while ctx lasts (its plugin restarted) is started again after 1 s,
// doubling to 30 s.
// Discover returns when ctx ends (nil), or at once with an error if no
// discovery could start finding peers.
func Discover(ctx context.Context, network sdk.Network, discoveries map[string]sdk.Discovery, namespace string, logger *slog.Logger, opts ...DiscoverOption) error {
	if network == nil || len(discoveries) == 0 {
		return fmt.Errorf("discover: need a network and at least one discovery: %w", sdk.ErrInvalidArgument)
	}
	if logger == nil {
		logger = slog.Default()
	}
	var cfg discoverConfig
	for _, o := range opts {
		o(&cfg)
	}
	selfID := network.PeerID()
	if selfID == "" {
		return fmt.Errorf("discover: the network has no peer ID (not started?): %w", ErrNoNetwork)
	}
	d := &dialer{network: network, self: selfID, logger: logger, seen: map[string]sighting{},
		onConnected: cfg.onConnected, budget: discoveryDialBudget, window: time.Now()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range discoveries {
			if !yield(name) {
				return
			}
		}
	})
	first := make(chan bool, len(names))
	for _, name := range names {
		r := &discoveryRun{d: d, name: name, disc: discoveries[name], namespace: namespace,
			log: logger.With("discovery", name, "namespace", namespace)}
		wg.Go(func() { r.run(ctx, &wg, first) })
	}
	started := 0
	for range names {
		if <-first {
			started++
		}
	}
	if started == 0 {
		cancel()
		wg.Wait()
		return fmt.Errorf("discover: no discovery could find peers under %q", namespace)
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// discoveryRun is one discovery's advertise-and-find, restarted when its
// search ends early.
type discoveryRun struct {
	d         *dialer
	name      string
	disc      sdk.Discovery
	namespace string
	log       *slog.Logger
}

// run advertises and finds until ctx ends. The outcome of the first
// FindPeers goes to first.
func (r *discoveryRun) run(ctx context.Context, wg *sync.WaitGroup, first chan<- bool) {
	wait := discoveryRestartMin
	for attempt := 0; ctx.Err() == nil; attempt++ {
		began := time.Now()
		ended := r.round(ctx, wg, func(ok bool) {
			if attempt == 0 {
				first <- ok
			}
		})
		if ctx.Err() != nil {
			return
		}
		if !ended {
			continue // the addresses changed: advertise them at once
		}
		if time.Since(began) > 2*discoveryRestartMax {
			wait = discoveryRestartMin
		}
		r.log.Warn("discovery's search ended or did not start; starting it again", "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, discoveryRestartMax)
	}
}

// round advertises the network's current addresses and dials what the
// search finds, until ctx ends (false), the search ends or cannot start
// (true), or the addresses change (false). started says whether the
// search started.
func (r *discoveryRun) round(ctx context.Context, wg *sync.WaitGroup, started func(bool)) bool {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nw := r.d.network
	self := sdk.PeerInfo{ID: r.d.self, Addrs: nw.Addrs()}
	if err := r.disc.Advertise(rctx, r.namespace, self); err != nil {
		r.log.Warn("advertise failed", "error", err)
	} else {
		r.log.Info("advertising", "peer", self.ID, "addrs", len(self.Addrs))
	}
	found, err := r.disc.FindPeers(rctx, r.namespace)
	if err != nil {
		r.log.Warn("find peers failed", "error", err)
		started(false)
		return true
	}
	started(true)
	addrs := addrKey(self.Addrs)
	tick := time.NewTicker(discoveryAddrsEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			if now := nw.Addrs(); len(now) > 0 && addrKey(now) != addrs {
				r.log.Info("the network's addresses changed; advertising them", "addrs", len(now))
				return false
			}
		case p, ok := <-found:
			if !ok {
				return true
			}
			r.d.found(ctx, wg, r.name, p)
		}
	}
}

func addrKey(addrs []string) string {
	s := slices.Clone(addrs)
	slices.Sort(s)
	return strings.Join(s, " ")
}

// sighting is what the dialer remembers of a peer.
type sighting struct {
	addrs    string    // sorted addresses, joined
	at       time.Time // when the last dial ended
	ok       bool      // the last dial connected (or found it connected)
	inFlight bool
}

// discoveryRecheck is how soon a peer whose last dial connected is
// looked at again when sighted: it may have gone and come back (a
// restarted node announces itself again), and a connected one costs only
// a look at the network's peers.
var discoveryRecheck = time.Second

type dialer struct {
	network     sdk.Network
	self        string
	logger      *slog.Logger
	onConnected func(peerID, discovery string)

	mu      sync.Mutex
	seen    map[string]sighting
	dialing int
	budget  int       // dials left in this window
	window  time.Time // start of the budget window
	// dropped and failed count what was not logged yet; lastWarn is when
	// the last warning went out.
	dropped, failed int
	lastWarn        time.Time
}

// found dials p unless it is this node, already dialled with the same
// addresses, failed recently, or the dial limits are reached.
func (d *dialer) found(ctx context.Context, wg *sync.WaitGroup, from string, p sdk.PeerInfo) {
	if p.ID == "" || p.ID == d.self || len(p.Addrs) == 0 {
		return
	}
	key := addrKey(p.Addrs)
	now := time.Now()
	d.mu.Lock()
	s, known := d.seen[p.ID]
	wait := discoveryRetry
	if s.ok {
		wait = discoveryRecheck
	}
	if known && (s.inFlight || (s.addrs == key && now.Sub(s.at) < wait)) {
		d.mu.Unlock()
		return
	}
	if d.dialing >= discoveryMaxDialing || (!known && !d.roomLocked(now)) {
		d.dropped++
		d.warnLocked(now)
		d.mu.Unlock()
		return
	}
	d.dialing++
	d.seen[p.ID] = sighting{addrs: key, inFlight: true}
	d.mu.Unlock()
	wg.Go(func() {
		dialled, err := d.dial(ctx, p)
		d.mu.Lock()
		d.dialing--
		d.seen[p.ID] = sighting{addrs: key, at: time.Now(), ok: err == nil}
		if err != nil && ctx.Err() == nil {
			d.failed++
			if !d.warnLocked(time.Now()) {
				d.logger.Debug("dial discovered peer failed", "discovery", from, "peer", p.ID, "error", err)
			}
		}
		d.mu.Unlock()
		if err != nil {
			return
		}
		if dialled {
			d.logger.Info("connected to discovered peer", "discovery", from, "peer", p.ID)
		}
		if d.onConnected != nil {
			d.onConnected(p.ID, from)
		}
	})
}

// roomLocked makes room for a new peer in seen (forgetting peers whose
// retry wait is over) and reports whether there is some.
func (d *dialer) roomLocked(now time.Time) bool {
	if len(d.seen) < discoveryMaxSeen {
		return true
	}
	for id, s := range d.seen {
		if !s.inFlight && now.Sub(s.at) >= discoveryRetry {
			delete(d.seen, id)
		}
	}
	return len(d.seen) < discoveryMaxSeen
}

// takeBudget takes one dial from the window's budget.
func (d *dialer) takeBudget(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.window) >= discoveryRetry {
		d.window, d.budget = now, discoveryDialBudget
	}
	if d.budget <= 0 {
		d.dropped++
		d.warnLocked(now)
		return false
	}
	d.budget--
	return true
}

// warnLocked logs the failures and drops counted since the last warning,
// if the last one is discoveryWarnEvery old; it reports whether it did.
func (d *dialer) warnLocked(now time.Time) bool {
	if now.Sub(d.lastWarn) < discoveryWarnEvery || d.dropped+d.failed == 0 {
		return false
	}
	d.lastWarn = now
	d.logger.Warn("discovered peers not reached", "dials_failed", d.failed, "sightings_dropped_at_limits", d.dropped,
		"max_dialing", discoveryMaxDialing, "dials_per_window", discoveryDialBudget, "window", discoveryRetry)
	d.dropped, d.failed = 0, 0
	return true
}

// errDialBudget: the window's dial budget is spent.
var errDialBudget = errors.New("discovery dial budget spent for now")

// dial connects to p unless it is connected already; dialled says
// whether this node dialled.
func (d *dialer) dial(ctx context.Context, p sdk.PeerInfo) (dialled bool, err error) {
	if p.ID < d.self {
		// The smaller ID dials first: this side, the larger, dials only if
		// the peer has not connected within the yield.
		t := time.NewTimer(discoveryYield)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
	if d.connected(ctx, p.ID) {
		return false, nil
	}
	if !d.takeBudget(time.Now()) {
		return false, errDialBudget
	}
	cctx, cancel := context.WithTimeout(ctx, discoveryDialTimeout)
	defer cancel()
	return true, d.network.Connect(cctx, p)
}

func (d *dialer) connected(ctx context.Context, id string) bool {
	peers, err := d.network.Peers(ctx)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(peers, func(p sdk.PeerInfo) bool { return p.ID == id })
}

// RunDiscovery runs Discover with the node's network plugin and every
// discovery plugin, under namespace (DiscoveryNamespace if empty), until
// ctx ends. It returns nil at once when no discovery plugin is enabled.
// OnConnected is called with the plugin's source name: its ID without
// the "discovery." prefix ("mdns" for discovery.mdns).
func (n *Node) RunDiscovery(ctx context.Context, namespace string, opts ...DiscoverOption) error {
	n.mu.Lock()
	host := n.host
	n.mu.Unlock()
	if host == nil {
		return ErrNotStarted
	}
	if namespace == "" {
		namespace = DiscoveryNamespace
	}
	discoveries := map[string]sdk.Discovery{}
	sources := map[string]string{}
	for _, p := range pluginsOfKind(host, sdk.KindDiscovery) {
		d, err := p.Discovery()
		if err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		discoveries[p.Name()] = d
		sources[p.Name()] = DiscoverySource(p.Description().ID)
	}
	if len(discoveries) == 0 {
		return nil
	}
	networks := pluginsOfKind(host, sdk.KindNetwork)
	if len(networks) == 0 {
		return fmt.Errorf("discovery: %w", ErrNoNetwork)
	}
	nw, err := networks[0].Network()
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	var cfg discoverConfig
	for _, o := range opts {
		o(&cfg)
	}
	if f := cfg.onConnected; f != nil {
		opts = append(opts, OnConnected(func(id, name string) { f(id, sources[name]) }))
	}
	return Discover(ctx, nw, discoveries, namespace, n.logger, opts...)
}

// DiscoverySource is how a peer found by the discovery plugin id is
// said to have been found: the id without its "discovery." prefix.
func DiscoverySource(id string) string {
	return strings.TrimPrefix(id, string(sdk.KindDiscovery)+".")
}
