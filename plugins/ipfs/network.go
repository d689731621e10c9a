package ipfs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/transport"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"

	"github.com/skein-p2p/skein/sdk"
)

// ID is the plugin's namespaced identifier.
const ID = "network.ipfs"

// Version is the plugin's version.
const Version = "0.1.0"

// Errors returned by the network plugin.
var (
	// ErrNotStarted is returned by network calls before Start or after Stop.
	ErrNotStarted = errors.New("network.ipfs: not started")
	// ErrBadCID is returned for a CID that does not parse.
	ErrBadCID = errors.New("network.ipfs: malformed CID")
	// ErrHashMismatch is returned for a block whose bytes do not hash to its CID.
	ErrHashMismatch = errors.New("network.ipfs: block bytes do not match their CID")
)

// maxFetchParallel bounds concurrent block fetches of one GetBlocks call.
const maxFetchParallel = 32

var (
	_ sdk.Plugin         = (*Network)(nil)
	_ sdk.Network        = (*Network)(nil)
	_ sdk.StatusReporter = (*Network)(nil)
)

// Network is the libp2p/IPFS network plugin. The zero value is not usable;
// call New. New has no side effects; Start does the work.
type Network struct {
	logger *slog.Logger

	mu      sync.Mutex
	cfg     Config
	started bool
	cancel  context.CancelFunc
	host    host.Host
	dht     routingDHT
	ps      *pubsub.PubSub
	bswap   *bitswap.Bitswap
	bserv   blockservice.BlockService
	bstore  blockstore.Blockstore
	dstore  ds.Batching
	topics  map[string]*pubsub.Topic
	gater   *gater
	// transports are the libp2p transports of the configured plugin
	// transport protocols, by protocol name (attach.go).
	transports map[string]*pluginTransport
	// attachMu serialises AttachTransport and DetachTransport.
	attachMu sync.Mutex
	// psOpts are extra gossipsub options (tests attach tracers).
	psOpts []pubsub.Option
	// redial keeps wanted peers connected (redial.go); nil when
	// redial_max_backoff is 0 or before Start.
	redial *redialer
	// agent is the libp2p agent version identify tells peers.
	agent string
	// stats counts stream bytes per transport (Status details).
	stats *transportStats

	// direct are the protocols of HandleRequests and Request (limits.go).
	direct *directProtocols
	// gate holds the closed topics and admissions (gate.go).
	gate *topicGate
	// valMu guards validators: the node's validator of each topic
	// (ValidateTopic).
	valMu      sync.RWMutex
	validators map[string]sdk.MessageValidator
	// scoring is this run's peer scoring (score.go); set by Start.
	scoring *scoring
	// scoreHook, when set before Start, sees every score inspection
	// (tests).
	scoreHook func(map[peer.ID]float64)
	// unsolicited counts the pubsub messages dropped because this node had
	// not announced their topic to the sender; cutOffs the peers cut off
	// for their score.
	unsolicited, cutOffs atomic.Uint64
}

// Option configures a Network.
type Option func(*Network)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(n *Network) { n.logger = l }
}

// WithAgentVersion sets the agent version libp2p's identify tells every
// peer (default "skein/" and the version of the main module, or
// "skein/dev"); cmd/node passes "skein/" and its release version.
func WithAgentVersion(v string) Option {
	return func(n *Network) { n.agent = v }
}

// DefaultAgentVersion is "skein/" and the main module's version from the
// build information, or "skein/dev" when it has none (a build from a
// work tree).
func DefaultAgentVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return "skein/" + bi.Main.Version
	}
	return "skein/dev"
}

// New returns an unconfigured network plugin. It has no side effects.
func New(opts ...Option) *Network {
	n := &Network{
		logger: slog.Default(), cfg: defaultConfig(), topics: map[string]*pubsub.Topic{}, gater: newGater(),
		agent: DefaultAgentVersion(), gate: newTopicGate(), direct: newDirectProtocols(), validators: map[string]sdk.MessageValidator{},
	}
	for _, o := range opts {
		o(n)
	}
	n.logger = n.logger.With("plugin", ID)
	return n
}

// Describe implements sdk.Plugin.
func (n *Network) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		ID:           ID,
		Kinds:        []sdk.Kind{sdk.KindNetwork},
		Version:      Version,
		Capabilities: []string{"network.bitswap", "network.gossipsub", "network.dht", sdk.CapNetworkTransports},
		ConfigSchema: configSchema(),
	}, nil
}

// Configure implements sdk.Plugin. Errors in the config come back as
// diagnostics naming the key; the plugin keeps its previous config then.
func (n *Network) Configure(_ context.Context, raw map[string]any) ([]sdk.Diagnostic, error) {
	cfg, diags := parseConfig(raw)
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			return diags, nil
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return nil, errors.New("network.ipfs: configure while started: stop first")
	}
	n.cfg = cfg
	return diags, nil
}

// Start implements sdk.Plugin: it opens the blockstore, starts the host, the
// DHT, gossipsub and bitswap, and dials the bootstrap peers (and keeps
// them connected, see Config.RedialMaxBackoff).
func (n *Network) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return nil
	}
	cfg := n.cfg
	runCtx, cancel := context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			cancel()
			n.closeLocked()
		}
	}()
	n.cancel = cancel

	key, err := loadOrCreateKey(cfg.DataDir)
	if err != nil {
		return err
	}
	if cfg.DataDir == "" {
		n.dstore = dssync.MutexWrap(ds.NewMapDatastore())
	} else {
		dir := filepath.Join(cfg.DataDir, "blocks")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("network.ipfs: blockstore directory: %w", err)
		}
		// Synced writes: a block the log acknowledged must survive kill -9
		// (the log's index, written after it, points at it).
		pds, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleWriteOptions(pebble.Sync))
		if err != nil {
			return fmt.Errorf("network.ipfs: open blockstore %s: %w", dir, err)
		}
		n.dstore = pds
	}
	// Write-through: no existence check (a pebble read with an iterator
	// of its own) before each put. Blocks are content-addressed, so a
	// block put twice is written twice with the same bytes; and what the
	// node puts is nearly always new (written entries, joined ones).
	n.bstore = blockstore.NewBlockstore(n.dstore, blockstore.WriteThrough(true))

	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		return fmt.Errorf("network.ipfs: connection manager: %w", err)
	}
	rm, err := rcmgr.NewResourceManager(newLimiter(cfg, n.direct))
	if err != nil {
		return fmt.Errorf("network.ipfs: resource manager: %w", err)
	}
	protos, err := registerTransports(cfg.Transports)
	if err != nil {
		return err
	}
	var up transport.Upgrader
	n.stats = newTransportStats()
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.UserAgent(n.agent),
		// Listening comes after, one address at a time (listenEach).
		libp2p.NoListenAddrs,
		libp2p.DefaultTransports,
		// Noise first (TLS kept for peers that only speak TLS): the
		// connections of plugin transports get the same upgrade.
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.DefaultMuxers,
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(n.gater),
		libp2p.BandwidthReporter(n.stats),
		// The host's own upgrader (Noise, yamux, this resource manager and
		// gater) upgrades the connections of plugin transports too.
		libp2p.WithFxOption(fx.Populate(&up)),
	}
	if cfg.Relay {
		opts = append(opts, libp2p.EnableRelay(), libp2p.EnableHolePunching())
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.NATService {
		opts = append(opts, libp2p.EnableNATService())
	}
	if err := checkListenPorts(cfg.ListenAddrs); err != nil {
		return err
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("network.ipfs: start libp2p host: %w", err)
	}
	n.host = h
	h.Network().Notify(gateNotifiee{n.gate})
	h.Network().Notify(n.stats.notifiee())
	if n.transports, err = addPluginTransports(h, protos, up, rm); err != nil {
		return err
	}
	if err := listenEach(h, cfg.ListenAddrs); err != nil {
		return err
	}

	if cfg.DHTMode != "off" {
		mode := map[string]dht.ModeOpt{"client": dht.ModeClient, "server": dht.ModeServer, "auto": dht.ModeAuto}[cfg.DHTMode]
		opts := []dht.Option{dht.Mode(mode), dht.ProtocolPrefix(protocol.ID(cfg.DHTPrefix)),
			dht.Datastore(dssync.MutexWrap(ds.NewMapDatastore()))}
		var d routingDHT
		if cfg.DHTScope == "dual" {
			// The prefix replaces the one dual's /lan extension was added
			// to: add the extension again after it.
			lan := append(slices.Clone(opts), dht.ProtocolExtension(dual.LanExtension))
			d, err = dual.New(h, dual.WanDHTOption(opts...), dual.LanDHTOption(lan...))
		} else {
			d, err = dht.New(h, opts...)
		}
		if err != nil {
			return fmt.Errorf("network.ipfs: start DHT: %w", err)
		}
		n.dht = d
	}

	params := pubsub.DefaultGossipSubParams()
	params.D = cfg.MeshD
	params.Dlo = max(1, cfg.MeshD-1)
	params.Dhi = cfg.MeshD + max(1, cfg.MeshD/2) // a tight band: grafts beyond D+D/2 are pruned
	params.Dlazy = cfg.MeshD
	params.Dout = max(0, min(cfg.MeshD/2-1, params.Dlo-1)) // pubsub wants Dout < D/2 and < Dlo
	params.Dscore = min(params.Dscore, params.Dhi)
	sc := &scoring{cfg: cfg.Score, scores: newAppScores(cfg.Score.AppHalfLife)}
	n.scoring = sc
	psOpts := []pubsub.Option{
		pubsub.WithGossipSubParams(params),
		// Closed topics (gate.go): the peer filter keeps peers not
		// admitted out of a closed topic's mesh and gossip, and the RPC
		// inspector drops what they send on it before anything else.
		pubsub.WithPeerFilter(n.gate.allowed),
		pubsub.WithAppSpecificRpcInspector(n.inspectRPC(sc)),
		// No author: a message carries no from, seqno, key or signature
		// (~50 B each). Skein's sealed announcements authenticate their
		// entries, and a relayed message's author is not its sender
		// anyway. Under StrictNoSign with no author, gossipsub rejects
		// a message that carries any of them; message ids are a hash of
		// topic and data (contentMessageID), not from+seqno.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(contentMessageID),
		pubsub.WithPeerExchange(false),
		// Flood publishing: a node's own message goes to every peer on the
		// topic (with a score above the publish threshold), not only the
		// mesh, so an announcement published before the mesh forms (up to
		// a heartbeat after connecting) still reaches its peers. Off by
		// default in go-libp2p-pubsub v0.19; on a closed topic, gate.go
		// strips it for peers not admitted.
		pubsub.WithFloodPublish(true),
	}
	// A message failing validation costs its forwarder score, and so does
	// what the node reports (ScorePeer); every honest node validates, so
	// only a misbehaving peer pays (score.go).
	psOpts = append(psOpts, n.peerScoreOptions(sc)...)
	psOpts = append(psOpts, n.psOpts...)
	ps, err := pubsub.NewGossipSub(runCtx, pubsubHost{Host: h, g: n.gate, logger: n.logger}, psOpts...)
	if err != nil {
		return fmt.Errorf("network.ipfs: start gossipsub: %w", err)
	}
	n.ps = ps

	var finder providerFinder
	if n.dht != nil {
		finder.dht = n.dht
	}
	n.bswap = bitswap.New(runCtx, bsnet.NewFromIpfsHost(h), finder, n.bstore,
		bitswap.ProviderSearchDelay(500*time.Millisecond))
	n.bserv = blockservice.New(n.bstore, n.bswap, blockservice.WriteThrough(true))

	if cfg.RedialMaxBackoff > 0 {
		r := newRedialer(h, n.gater, n.logger, cfg.RedialMaxBackoff, cfg.RedialMaxPeers)
		if cfg.DataDir != "" {
			r.file = filepath.Join(cfg.DataDir, wantedPeersFile)
		}
		if err := r.start(runCtx); err != nil {
			return err
		}
		n.redial = r
	}

	n.started = true
	n.logger.Info("network started", "peer", h.ID().String(), "addrs", fmt.Sprint(h.Addrs()), "dht", cfg.DHTMode)
	for _, a := range cfg.Bootstrap {
		info, err := parsePeerAddr(a)
		if err != nil {
			continue // validated in Configure
		}
		if n.redial != nil {
			// Dialled now, and again whenever it is lost.
			n.redial.want(*info, true, true)
			continue
		}
		go func() {
			cctx, ccancel := context.WithTimeout(runCtx, 30*time.Second)
			defer ccancel()
			if err := h.Connect(cctx, *info); err != nil {
				n.logger.Warn("bootstrap peer unreachable", "peer", info.ID.String(), "err", err)
			}
		}()
	}
	if n.redial != nil {
		n.redial.restore()
	}
	if n.dht != nil && len(cfg.Bootstrap) > 0 {
		_ = n.dht.Bootstrap(runCtx)
	}
	return nil
}

// Stop implements sdk.Plugin. It is idempotent and safe after a partial start.
func (n *Network) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closeLocked()
}

func (n *Network) closeLocked() error {
	var errs []error
	if n.cancel != nil {
		n.cancel()
		n.cancel = nil
	}
	for name, t := range n.topics {
		_ = t.Close()
		delete(n.topics, name)
	}
	if n.bserv != nil {
		errs = append(errs, n.bserv.Close())
		n.bserv = nil
	}
	if n.bswap != nil {
		errs = append(errs, n.bswap.Close())
		n.bswap = nil
	}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
		n.dht = nil
	}
	n.ps = nil
	n.transports = nil
	n.gate.reset()
	if n.host != nil {
		errs = append(errs, n.host.Close())
		n.host = nil
	}
	if n.redial != nil {
		// Its loop ended with the cancelled context; wait for it and for
		// the dials under way (they fail at once with the host closed).
		n.redial.wait()
		n.redial = nil
	}
	if n.dstore != nil {
		errs = append(errs, n.dstore.Close())
		n.dstore = nil
	}
	n.bstore = nil
	n.started = false
	return errors.Join(errs...)
}

// Status implements sdk.StatusReporter.
func (n *Network) Status(context.Context) (sdk.Status, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return sdk.Status{Healthy: false, Message: "not started"}, nil
	}
	var wanted, redials int64
	if n.redial != nil {
		wanted, redials = int64(n.redial.wanted()), n.redial.attempts.Load()
	}
	st := sdk.Status{
		Healthy: true,
		Message: "running",
		Details: map[string]string{
			"peer":    n.host.ID().String(),
			"peers":   fmt.Sprint(len(n.host.Network().Peers())),
			"wanted":  fmt.Sprint(wanted),
			"redials": fmt.Sprint(redials),
			// Pubsub messages dropped because their topic was not
			// announced to the sender, and peers cut off for their score.
			"unsolicited_dropped": fmt.Sprint(n.unsolicited.Load()),
			"peers_cut_off":       fmt.Sprint(n.cutOffs.Load()),
		},
	}
	n.stats.details(n.host.Network(), st.Details)
	return st, nil
}

// running returns the live components or ErrNotStarted.
func (n *Network) running() (host.Host, *pubsub.PubSub, blockservice.BlockService, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return nil, nil, nil, ErrNotStarted
	}
	return n.host, n.ps, n.bserv, nil
}

// Host returns the libp2p host (nil before Start), for code linked in that
// needs more than sdk.Network (e.g. the head-exchange protocol).
func (n *Network) Host() host.Host {
	h, _, _, _ := n.running()
	return h
}

// PeerID implements sdk.Network.
func (n *Network) PeerID() string {
	h, _, _, err := n.running()
	if err != nil {
		return ""
	}
	return h.ID().String()
}

// Addrs implements sdk.Network: full multiaddrs including /p2p/<id>.
func (n *Network) Addrs() []string {
	h, _, _, err := n.running()
	if err != nil {
		return nil
	}
	infos, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(infos))
	for i, a := range infos {
		out[i] = a.String()
	}
	return out
}

// PutBlocks implements sdk.Network: each block's bytes must hash to its CID.
func (n *Network) PutBlocks(ctx context.Context, in []sdk.Block) error {
	_, _, bs, err := n.running()
	if err != nil {
		return err
	}
	blks := make([]blocks.Block, 0, len(in))
	for i, b := range in {
		c, err := cid.Cast(b.CID)
		if err != nil {
			return fmt.Errorf("put block %d: %w: %v", i, ErrBadCID, err)
		}
		// Verify before accepting: the bytes must hash to the CID.
		sum, err := c.Prefix().Sum(b.Data)
		if err != nil {
			return fmt.Errorf("put block %s: %w", c, err)
		}
		if !sum.Equals(c) {
			return fmt.Errorf("put block %s: %w", c, ErrHashMismatch)
		}
		blk, err := blocks.NewBlockWithCid(b.Data, c)
		if err != nil {
			return fmt.Errorf("put block %s: %w", c, err)
		}
		blks = append(blks, blk)
	}
	if err := bs.AddBlocks(ctx, blks); err != nil {
		return fmt.Errorf("put blocks: %w", err)
	}
	return nil
}

// GetBlocks implements sdk.Network. A block that cannot be had before ctx
// ends yields an error naming its CID.
func (n *Network) GetBlocks(ctx context.Context, cids [][]byte) iter.Seq2[sdk.Block, error] {
	return func(yield func(sdk.Block, error) bool) {
		_, _, bs, err := n.running()
		if err != nil {
			yield(sdk.Block{}, err)
			return
		}
		want := make([]cid.Cid, 0, len(cids))
		for _, raw := range cids {
			c, err := cid.Cast(raw)
			if err != nil {
				if !yield(sdk.Block{}, fmt.Errorf("%w: %v", ErrBadCID, err)) {
					return
				}
				continue
			}
			want = append(want, c)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pending := make(map[cid.Cid]bool, len(want))
		for _, c := range want {
			pending[c] = true
		}
		for start := 0; start < len(want); start += maxFetchParallel {
			chunk := want[start:min(len(want), start+maxFetchParallel)]
			for blk := range bs.GetBlocks(ctx, chunk) {
				delete(pending, blk.Cid())
				if !yield(sdk.Block{CID: blk.Cid().Bytes(), Data: blk.RawData()}, nil) {
					return
				}
			}
		}
		for _, c := range want {
			if pending[c] {
				err := ctx.Err()
				if err == nil {
					err = errors.New("not fetched")
				}
				if !yield(sdk.Block{CID: c.Bytes()}, fmt.Errorf("get block %s: %w", c, err)) {
					return
				}
			}
		}
	}
}

// HasBlock implements sdk.Network (local blockstore only).
func (n *Network) HasBlock(ctx context.Context, raw []byte) (bool, error) {
	_, _, bs, err := n.running()
	if err != nil {
		return false, err
	}
	c, err := cid.Cast(raw)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrBadCID, err)
	}
	return bs.Blockstore().Has(ctx, c)
}

func (n *Network) topic(name string) (*pubsub.Topic, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return nil, ErrNotStarted
	}
	if t, ok := n.topics[name]; ok {
		return t, nil
	}
	// Before Join, so that no message of the topic goes unvalidated.
	v := n.topicValidator(n.host.ID(), name, n.cfg.PubsubValidation == PubsubValidationSkein, n.cfg.ValidateTimeout)
	if err := n.ps.RegisterTopicValidator(name, v, pubsub.WithValidatorConcurrency(n.cfg.ValidateConcurrency)); err != nil {
		return nil, fmt.Errorf("join topic: register validator: %w", err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join topic: %w", err)
	}
	if err := t.SetScoreParams(topicScoreParams()); err != nil {
		_ = t.Close()
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join topic: score parameters: %w", err)
	}
	n.topics[name] = t
	return t, nil
}

// Publish implements sdk.Network.
func (n *Network) Publish(ctx context.Context, topic string, data []byte) error {
	t, err := n.topic(topic)
	if err != nil {
		return err
	}
	return t.Publish(ctx, data)
}

// Subscribe implements sdk.Network. The channel closes when ctx ends. Own
// messages are not delivered.
func (n *Network) Subscribe(ctx context.Context, topic string) (<-chan sdk.PubsubMessage, error) {
	t, err := n.topic(topic)
	if err != nil {
		return nil, err
	}
	// Counted before gossipsub announces the subscription, so that no
	// peer's message on it is taken for unsolicited (gate.go).
	n.gate.subscribe(topic, 1)
	sub, err := t.Subscribe()
	if err != nil {
		n.gate.subscribe(topic, -1)
		return nil, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	self := n.Host().ID()
	out := make(chan sdk.PubsubMessage, 64)
	go func() {
		defer close(out)
		defer n.gate.subscribe(topic, -1)
		defer sub.Cancel()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom == self {
				continue
			}
			select {
			case out <- sdk.PubsubMessage{Topic: topic, From: m.ReceivedFrom.String(), Data: m.Data}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Connect implements sdk.Network. Unless redial_max_backoff is 0, a peer
// it connected to is also remembered as wanted (in the data directory
// too) and redialled, with backoff, whenever it is not connected. A peer
// it could not reach is not remembered: addresses from a DHT lookup or a
// discovery plugin may name peers that do not exist, and they must not
// crowd out the peers worth keeping (at most redial_max_peers).
func (n *Network) Connect(ctx context.Context, p sdk.PeerInfo) error {
	n.mu.Lock()
	started, h, r := n.started, n.host, n.redial
	n.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	info, err := toAddrInfo(p)
	if err != nil {
		return err
	}
	worked, err := connectExactly(ctx, h, info)
	if err != nil {
		return fmt.Errorf("connect %s: %w", info.ID, err)
	}
	if r != nil {
		r.want(peer.AddrInfo{ID: info.ID, Addrs: worked}, false, false)
	}
	return nil
}

// Peers implements sdk.Network: the peers connected now.
func (n *Network) Peers(context.Context) ([]sdk.PeerInfo, error) {
	h, _, _, err := n.running()
	if err != nil {
		return nil, err
	}
	var out []sdk.PeerInfo
	for _, p := range h.Network().Peers() {
		info := sdk.PeerInfo{ID: p.String()}
		for _, c := range h.Network().ConnsToPeer(p) {
			info.Addrs = append(info.Addrs, c.RemoteMultiaddr().String())
		}
		out = append(out, info)
	}
	return out, nil
}

// Provide implements sdk.Network: announces the block in the DHT.
func (n *Network) Provide(ctx context.Context, raw []byte) error {
	n.mu.Lock()
	d := n.dht
	n.mu.Unlock()
	if d == nil {
		return errors.New("network.ipfs: provide: DHT is off")
	}
	c, err := cid.Cast(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadCID, err)
	}
	return d.Provide(ctx, c, true)
}

// FindProviders implements sdk.Network.
func (n *Network) FindProviders(ctx context.Context, raw []byte) (<-chan sdk.PeerInfo, error) {
	n.mu.Lock()
	d := n.dht
	n.mu.Unlock()
	if d == nil {
		return nil, errors.New("network.ipfs: find providers: DHT is off")
	}
	c, err := cid.Cast(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCID, err)
	}
	out := make(chan sdk.PeerInfo)
	go func() {
		defer close(out)
		for p := range d.FindProvidersAsync(ctx, c, 20) {
			info := sdk.PeerInfo{ID: p.ID.String()}
			for _, a := range p.Addrs {
				info.Addrs = append(info.Addrs, a.String())
			}
			select {
			case out <- info:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// contentMessageID identifies an unsigned pubsub message by its content, so
// duplicates from many mesh peers are recognised without sequence numbers.
func contentMessageID(m *pb.Message) string {
	h := sha256.New()
	h.Write([]byte(m.GetTopic()))
	h.Write([]byte{0})
	h.Write(m.GetData())
	return string(h.Sum(nil))
}

// loadOrCreateKey returns the network identity: data_dir/network.key, made
// on first start; an ephemeral key when dir is empty.
func loadOrCreateKey(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("network.ipfs: data directory: %w", err)
	}
	path := filepath.Join(dir, "network.key")
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("network.ipfs: %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
		}
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("network.ipfs: %s is not a network key: %w", path, err)
		}
		return k, nil
	case errors.Is(err, os.ErrNotExist):
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		b, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			return nil, err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return nil, fmt.Errorf("network.ipfs: write network key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("network.ipfs: write network key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("network.ipfs: read network key: %w", err)
	}
}

func parsePeerAddr(s string) (*peer.AddrInfo, error) {
	ma, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("not a multiaddr %q: %v", s, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		return nil, fmt.Errorf("%q has no /p2p/<peer id>: %v", s, err)
	}
	return info, nil
}

func toAddrInfo(p sdk.PeerInfo) (peer.AddrInfo, error) {
	id, err := peer.Decode(p.ID)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bad peer id %q: %w", p.ID, err)
	}
	info := peer.AddrInfo{ID: id}
	for _, a := range p.Addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("bad address %q: %w", a, err)
		}
		if t, _ := peer.SplitAddr(ma); t != nil {
			ma = t
		}
		info.Addrs = append(info.Addrs, ma)
	}
	return info, nil
}

// routingDHT is what the node uses of its DHT: *dht.IpfsDHT (dht_scope
// all) or *dual.DHT (dht_scope dual).
type routingDHT interface {
	Provide(ctx context.Context, c cid.Cid, announce bool) error
	FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo
	Bootstrap(ctx context.Context) error
	Close() error
}

var (
	_ routingDHT = (*dht.IpfsDHT)(nil)
	_ routingDHT = (*dual.DHT)(nil)
)

// providerFinder adapts the optional DHT to bitswap's provider search.
type providerFinder struct{ dht routingDHT }

func (f providerFinder) FindProvidersAsync(ctx context.Context, c cid.Cid, max int) <-chan peer.AddrInfo {
	if f.dht == nil {
		ch := make(chan peer.AddrInfo)
		close(ch)
		return ch
	}
	return f.dht.FindProvidersAsync(ctx, c, max)
}
