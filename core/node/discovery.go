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
	// before a new sighting is dialled again.
	discoveryRetry = 30 * time.Second
	// discoveryYield is how long the peer with the larger ID waits before
	// dialling a peer it found, so that when both find each other at once
	// only one dials (the smaller ID dials at once).
	discoveryYield = 2 * time.Second
	// discoveryDialTimeout bounds one dial.
	discoveryDialTimeout = 30 * time.Second
)

// Discover advertises this node's network peer (its ID and addresses, as
// the network says at the call) under namespace on every discovery given,
// and dials (network.Connect) every peer any of them finds, until ctx
// ends. Sightings are de-duplicated: a peer seen again with the same
// addresses within discoveryRetry (30s) of the last dial is not dialled
// again, nor while a dial to it is in flight; a failed dial is logged.
// Itself and peers already connected are skipped.
// Discover returns when ctx ends (nil), or at once with an error if no
// discovery could start advertising or finding.
func Discover(ctx context.Context, network sdk.Network, discoveries map[string]sdk.Discovery, namespace string, logger *slog.Logger) error {
	if network == nil || len(discoveries) == 0 {
		return fmt.Errorf("discover: need a network and at least one discovery: %w", sdk.ErrInvalidArgument)
	}
	if logger == nil {
		logger = slog.Default()
	}
	self := sdk.PeerInfo{ID: network.PeerID(), Addrs: network.Addrs()}
	if self.ID == "" {
		return fmt.Errorf("discover: the network has no peer ID (not started?): %w", ErrNoNetwork)
	}
	d := &dialer{network: network, self: self.ID, logger: logger, seen: map[string]sighting{}}
	var wg sync.WaitGroup
	started := 0
	names := make([]string, 0, len(discoveries))
	for name := range discoveries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		disc := discoveries[name]
		log := logger.With("discovery", name, "namespace", namespace)
		if err := disc.Advertise(ctx, namespace, self); err != nil {
			log.Warn("advertise failed", "error", err)
		} else {
			log.Info("advertising", "peer", self.ID, "addrs", len(self.Addrs))
		}
		found, err := disc.FindPeers(ctx, namespace)
		if err != nil {
			log.Warn("find peers failed", "error", err)
			continue
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case p, ok := <-found:
					if !ok {
						if ctx.Err() == nil {
							log.Warn("discovery stopped finding peers")
						}
						return
					}
					d.found(ctx, &wg, name, p)
				}
			}
		}()
	}
	if started == 0 {
		return fmt.Errorf("discover: no discovery could find peers under %q", namespace)
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// sighting is what the dialer remembers of a peer.
type sighting struct {
	addrs    string    // sorted addresses, joined
	at       time.Time // when the last dial ended
	inFlight bool
}

type dialer struct {
	network sdk.Network
	self    string
	logger  *slog.Logger

	mu   sync.Mutex
	seen map[string]sighting
}

// found dials p unless it is this node, already dialled with the same
// addresses, or failed recently.
func (d *dialer) found(ctx context.Context, wg *sync.WaitGroup, from string, p sdk.PeerInfo) {
	if p.ID == "" || p.ID == d.self || len(p.Addrs) == 0 {
		return
	}
	addrs := slices.Clone(p.Addrs)
	slices.Sort(addrs)
	key := strings.Join(addrs, " ")
	d.mu.Lock()
	s, known := d.seen[p.ID]
	if known && (s.inFlight || (s.addrs == key && time.Since(s.at) < discoveryRetry)) {
		d.mu.Unlock()
		return
	}
	d.seen[p.ID] = sighting{addrs: key, inFlight: true}
	d.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := d.dial(ctx, p)
		d.mu.Lock()
		d.seen[p.ID] = sighting{addrs: key, at: time.Now()}
		d.mu.Unlock()
		switch {
		case err == nil:
			d.logger.Info("connected to discovered peer", "discovery", from, "peer", p.ID)
		case ctx.Err() != nil:
		default:
			d.logger.Warn("dial discovered peer failed", "discovery", from, "peer", p.ID, "error", err)
		}
	}()
}

func (d *dialer) dial(ctx context.Context, p sdk.PeerInfo) error {
	if p.ID > d.self {
		// The smaller ID dials first; this side dials only if it has not.
		t := time.NewTimer(discoveryYield)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if d.connected(ctx, p.ID) {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, discoveryDialTimeout)
	defer cancel()
	return d.network.Connect(cctx, p)
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
func (n *Node) RunDiscovery(ctx context.Context, namespace string) error {
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
	for _, p := range pluginsOfKind(host, sdk.KindDiscovery) {
		d, err := p.Discovery()
		if err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		discoveries[p.Name()] = d
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
	return Discover(ctx, nw, discoveries, namespace, n.logger)
}
