package ipfs

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/skein-p2p/skein/internal/bytesize"
	"github.com/skein-p2p/skein/sdk"
)

// Config is the network plugin's config subtree (plugins.<name>.config).
type Config struct {
	// DataDir holds the network key and the blockstore. Empty: an ephemeral
	// key and an in-memory blockstore (tests, experiments).
	DataDir string
	// ListenAddrs are libp2p multiaddrs to listen on.
	// Default: TCP, QUIC and WebSocket on all interfaces, port 4001.
	ListenAddrs []string
	// Bootstrap peers (multiaddrs with /p2p/ID), dialled at start and
	// kept connected (see RedialMaxBackoff). Default none: a node depends
	// on no third party.
	Bootstrap []string
	// RedialMaxBackoff caps the backoff between redials of a wanted peer
	// (a bootstrap peer, or one the node was asked to Connect to) that is
	// not connected: the first redial comes 1 s after the loss or failed
	// dial, each further one twice as late up to this cap, plus up to a
	// fifth of jitter. Default 1 min; 0 disables redialling (bootstrap
	// peers are then dialled once, at start).
	RedialMaxBackoff time.Duration
	// RedialMaxPeers bounds the peers remembered from Connect calls (the
	// least recently wanted is forgotten first); bootstrap peers are
	// always kept. Default 256.
	RedialMaxPeers int
	// DHTMode is "client", "server", "auto" (default) or "off".
	DHTMode string
	// DHTPrefix is the DHT protocol prefix. Default "/skein": a private DHT.
	// The public-ipfs preset sets "/ipfs".
	DHTPrefix string
	// DHTScope is "all" (default: one DHT over every address, private ones
	// included: what a private Skein network on a LAN or one machine
	// wants) or "dual" (as IPFS does: a WAN DHT over public addresses and
	// a LAN DHT over private ones, the LAN one under the protocol
	// extension /lan).
	DHTScope string
	// ConnLow and ConnHigh are the connection manager's watermarks
	// (default 32 and 128).
	ConnLow, ConnHigh int
	// Relay enables the circuit relay v2 client and hole punching (default true).
	Relay bool
	// NATService runs an AutoNAT service for other peers (default false).
	NATService bool
	// MeshD is gossipsub's target mesh degree (default 4, sized for groups).
	MeshD int
	// PubsubValidation is PubsubValidationSkein (default: every pubsub
	// message is validated as a Skein announcement before it is delivered
	// or forwarded) or PubsubValidationNone (any bytes; generic pubsub).
	PubsubValidation string
	// ValidateConcurrency bounds the messages of one topic being validated
	// at once (the node's validator, see sdk.TopicValidator, and the
	// built-in one); a message that arrives while all are busy is dropped
	// unvalidated (not delivered, not forwarded). Default 64.
	ValidateConcurrency int
	// ValidateTimeout is how long a message waits for the node's
	// validator; no answer by then counts as sdk.VerdictIgnore. Default 2s.
	ValidateTimeout time.Duration
	// Score holds the peer-scoring thresholds and the application score's
	// decay (see score.go).
	Score ScoreConfig
	// Direct holds the limits of the direct request protocols (head
	// exchange, entries: sdk.DirectMessenger).
	Direct DirectConfig
	// ResourceMemory is the libp2p resource manager's system-wide memory
	// limit in bytes (every connection, stream and buffer the resource
	// manager accounts, the direct protocols' frames included). 0: libp2p's
	// autoscaled default (128 MiB plus an eighth of the machine's memory).
	// Default 0.
	ResourceMemory int64
	// Transports maps the multiaddr protocol name of each transport plugin
	// the node may attach (its Protocol(), e.g. "x-unix-pipe") to the
	// transport-specific addresses the host listens on once it is attached
	// (none: dial only). A protocol is registered when the host starts;
	// attaching a transport whose protocol is not listed here is refused.
	// Default none.
	Transports map[string][]string
}

// ScoreConfig is gossipsub peer scoring (score.go). A peer's score is
// the sum of its application score (sdk.PeerScorer, and what the network
// itself holds against it) and, per topic, a penalty for the messages it
// handed over that failed validation. Thresholds go down in this order:
// below 0 the peer is pruned from every mesh at the next heartbeat.
type ScoreConfig struct {
	// GossipThreshold: below it, no gossip (IHAVE/IWANT) is exchanged with
	// the peer. Default -20.
	GossipThreshold float64
	// PublishThreshold: below it, the peer gets none of this node's own
	// publications. Default -40.
	PublishThreshold float64
	// GraylistThreshold: below it, everything the peer sends over pubsub
	// is ignored. Default -80.
	GraylistThreshold float64
	// DisconnectThreshold: below it, the peer is cut off (its connections
	// closed, and it cannot connect again either way) for BlockFor.
	// Default -160.
	DisconnectThreshold float64
	// BlockFor is how long a peer that fell below DisconnectThreshold
	// stays cut off. Default 10m.
	BlockFor time.Duration
	// AppHalfLife is the half-life of the application score: a penalty
	// or credit loses half its weight in this time. Default 1m.
	AppHalfLife time.Duration
}

func defaultScoreConfig() ScoreConfig {
	return ScoreConfig{
		GossipThreshold:     -20,
		PublishThreshold:    -40,
		GraylistThreshold:   -80,
		DisconnectThreshold: -160,
		BlockFor:            10 * time.Minute,
		AppHalfLife:         time.Minute,
	}
}

// DirectConfig bounds the direct request protocols (sdk.DirectMessenger:
// head exchange, entries). Every stream of them is accounted to libp2p's
// resource manager under the service "skein.direct" and its protocol;
// the memory of a frame is reserved as its bytes arrive, never for the
// length a peer claims.
type DirectConfig struct {
	// Memory bounds the memory of all direct streams together (service
	// scope). Default 64 MiB.
	Memory int64
	// MemoryPerPeer bounds one peer's direct streams together (service
	// peer scope); at least MaxDirectMessage, so one largest frame fits.
	// Default 16 MiB.
	MemoryPerPeer int64
	// Streams bounds the inbound streams of one direct protocol, from all
	// peers together. Default 256.
	Streams int
	// StreamsPerPeer bounds the inbound streams of one direct protocol
	// from one peer. Default 16.
	StreamsPerPeer int
	// IdleTimeout: a stream on which no byte arrives for this long while a
	// frame is awaited is reset (a partial frame then a stall). Default 10s.
	IdleTimeout time.Duration
	// Timeout bounds one whole exchange on the answering side: reading the
	// request, the handler, writing the answer. Default 30s.
	Timeout time.Duration
}

func defaultDirectConfig() DirectConfig {
	return DirectConfig{
		Memory:         64 << 20,
		MemoryPerPeer:  16 << 20,
		Streams:        256,
		StreamsPerPeer: 16,
		IdleTimeout:    10 * time.Second,
		Timeout:        30 * time.Second,
	}
}

func defaultConfig() Config {
	return Config{
		ListenAddrs: []string{
			"/ip4/0.0.0.0/tcp/4001",
			"/ip4/0.0.0.0/udp/4001/quic-v1",
			"/ip4/0.0.0.0/tcp/4002/ws",
		},
		DHTMode:   "auto",
		DHTPrefix: "/skein",
		DHTScope:  "all",
		ConnLow:   32,
		ConnHigh:  128,
		Relay:     true,
		MeshD:     4,

		RedialMaxBackoff: time.Minute,
		RedialMaxPeers:   256,

		PubsubValidation: PubsubValidationSkein,

		ValidateConcurrency: 64,
		ValidateTimeout:     2 * time.Second,
		Score:               defaultScoreConfig(),
		Direct:              defaultDirectConfig(),
	}
}

// configSchema documents every key.
func configSchema() []sdk.ConfigKey {
	d := defaultConfig()
	return []sdk.ConfigKey{
		{Key: "data_dir", Type: "string", Default: "", Description: "directory for the network key and blockstore; empty = ephemeral, in memory"},
		{Key: "listen", Type: "list", Default: fmt.Sprint(d.ListenAddrs), Description: "libp2p multiaddrs to listen on"},
		{Key: "bootstrap", Type: "list", Default: "[]", Description: "peers (multiaddr with /p2p/ID) dialled at start and redialled when lost (see redial_max_backoff); none by default"},
		{Key: "redial_max_backoff", Type: "duration", Default: d.RedialMaxBackoff.String(), Description: "wanted peers (bootstrap peers and peers the node was asked to connect to) that are not connected are redialled 1 s after the loss, then twice as late after each failure, up to this (plus up to a fifth of jitter); reset after a connection that lasted 10 s; 0 disables redialling"},
		{Key: "redial_max_peers", Type: "int", Default: fmt.Sprint(d.RedialMaxPeers), Description: "peers remembered from connect requests and kept connected (least recently wanted forgotten first; bootstrap peers always kept), 1..4096"},
		{Key: "dht_mode", Type: "string", Default: d.DHTMode, Description: "client, server, auto or off"},
		{Key: "dht_prefix", Type: "string", Default: d.DHTPrefix, Description: "DHT protocol prefix; /ipfs joins the public IPFS DHT"},
		{Key: "dht_scope", Type: "string", Default: d.DHTScope, Description: "all: one DHT over every address (private ones included); dual: a WAN DHT over public addresses plus a LAN DHT over private ones (/lan), as IPFS runs"},
		{Key: "conn_low", Type: "int", Default: fmt.Sprint(d.ConnLow), Description: "connection manager low watermark"},
		{Key: "conn_high", Type: "int", Default: fmt.Sprint(d.ConnHigh), Description: "connection manager high watermark"},
		{Key: "relay", Type: "bool", Default: fmt.Sprint(d.Relay), Description: "circuit relay v2 client and hole punching"},
		{Key: "nat_service", Type: "bool", Default: fmt.Sprint(d.NATService), Description: "serve AutoNAT to other peers"},
		{Key: "mesh_d", Type: "int", Default: fmt.Sprint(d.MeshD), Description: "gossipsub mesh degree"},
		{Key: "validate_concurrency", Type: "int", Default: fmt.Sprint(d.ValidateConcurrency), Description: "messages of one topic validated at once (the node's validator and the built-in one); a message arriving while all are busy is dropped unvalidated, 1..4096"},
		{Key: "validate_timeout", Type: "duration", Default: d.ValidateTimeout.String(), Description: "how long a pubsub message waits for the node's validator; no answer by then: ignored (neither delivered nor forwarded, no penalty), 10ms..1m"},
		{Key: "score_gossip_threshold", Type: "number", Default: fmt.Sprint(d.Score.GossipThreshold), Description: "peer score below which no gossip is exchanged with a peer (below 0 it is already pruned from every mesh); <= 0"},
		{Key: "score_publish_threshold", Type: "number", Default: fmt.Sprint(d.Score.PublishThreshold), Description: "peer score below which a peer gets none of this node's own publications; <= score_gossip_threshold"},
		{Key: "score_graylist_threshold", Type: "number", Default: fmt.Sprint(d.Score.GraylistThreshold), Description: "peer score below which everything a peer sends over pubsub is ignored; <= score_publish_threshold"},
		{Key: "score_disconnect_threshold", Type: "number", Default: fmt.Sprint(d.Score.DisconnectThreshold), Description: "peer score below which a peer is cut off (connections closed, refused either way) for score_block_for; <= score_graylist_threshold"},
		{Key: "score_block_for", Type: "duration", Default: d.Score.BlockFor.String(), Description: "how long a peer below score_disconnect_threshold stays cut off, 1s..24h"},
		{Key: "score_app_half_life", Type: "duration", Default: d.Score.AppHalfLife.String(), Description: "half-life of a peer's application score (what the node reported with ScorePeer, and the network's own penalties), 1s..24h"},
		{Key: "direct_memory", Type: "size", Default: bytesize.Format(d.Direct.Memory), Description: "memory of all direct-protocol streams together (head exchange, entries; libp2p resource manager service skein.direct); frames reserve it as their bytes arrive; a stream over it is reset"},
		{Key: "direct_memory_per_peer", Type: "size", Default: bytesize.Format(d.Direct.MemoryPerPeer), Description: "memory of one peer's direct-protocol streams together; at least 4MiB (one largest frame), at most direct_memory"},
		{Key: "direct_streams", Type: "int", Default: fmt.Sprint(d.Direct.Streams), Description: "inbound streams of one direct protocol from all peers together, 1..65536"},
		{Key: "direct_streams_per_peer", Type: "int", Default: fmt.Sprint(d.Direct.StreamsPerPeer), Description: "inbound streams of one direct protocol from one peer, 1..direct_streams"},
		{Key: "direct_idle_timeout", Type: "duration", Default: d.Direct.IdleTimeout.String(), Description: "a direct stream on which no byte arrives for this long while a frame is awaited is reset, 100ms..direct_timeout"},
		{Key: "direct_timeout", Type: "duration", Default: d.Direct.Timeout.String(), Description: "bound on one direct exchange on the answering side (read the request, run the handler, write the answer), 1s..10m"},
		{Key: "resource_memory", Type: "size", Default: "0", Description: "libp2p resource manager's system-wide memory limit (connections, streams, buffers it accounts, direct frames included); 0: libp2p's autoscaled default (128MiB plus an eighth of the machine's memory); else at least direct_memory"},
		{Key: "transports", Type: "map", Default: "{}", Description: "multiaddr protocol name of each transport plugin to attach (its Protocol(), e.g. x-unix-pipe) -> list of transport-specific addresses to listen on once attached ([] = dial only); the protocol's multiaddr code is derived from its name (0x300000 + sha256(name)[0:4] mod 0x100000); a transport whose protocol is not listed is not attached"},
		{Key: "pubsub_validation", Type: "string", Default: d.PubsubValidation, Description: "skein: every pubsub message must be a valid Skein announcement (strict encoding, inline entries hashing to their CID and correctly signed), else it is neither delivered nor forwarded, and a node's own Publish of it fails; none: any bytes (generic pubsub)"},
	}
}

// parseConfig turns a config subtree into a Config, reporting every problem
// as a diagnostic that names its key.
func parseConfig(raw map[string]any) (Config, []sdk.Diagnostic) {
	c := defaultConfig()
	var diags []sdk.Diagnostic
	bad := func(key, format string, args ...any) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	known := map[string]bool{}
	for _, k := range configSchema() {
		known[k.Key] = true
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			bad(k, "unknown key")
		}
	}
	str := func(key string, dst *string) {
		if v, ok := raw[key]; ok {
			s, ok := v.(string)
			if !ok {
				bad(key, "want a string, got %T", v)
				return
			}
			*dst = s
		}
	}
	integer := func(key string, dst *int) {
		v, ok := raw[key]
		if !ok {
			return
		}
		switch n := v.(type) {
		case int:
			*dst = n
		case int64:
			*dst = int(n)
		case float64:
			if n != float64(int(n)) {
				bad(key, "want an integer, got %v", n)
				return
			}
			*dst = int(n)
		default:
			bad(key, "want an integer, got %T", v)
		}
	}
	boolean := func(key string, dst *bool) {
		if v, ok := raw[key]; ok {
			b, ok := v.(bool)
			if !ok {
				bad(key, "want true or false, got %T", v)
				return
			}
			*dst = b
		}
	}
	list := func(key string, dst *[]string) {
		v, ok := raw[key]
		if !ok {
			return
		}
		var out []string
		switch l := v.(type) {
		case []string:
			out = l
		case []any:
			for i, e := range l {
				s, ok := e.(string)
				if !ok {
					bad(fmt.Sprintf("%s[%d]", key, i), "want a string, got %T", e)
					return
				}
				out = append(out, s)
			}
		default:
			bad(key, "want a list of strings, got %T", v)
			return
		}
		*dst = out
	}
	duration := func(key string, dst *time.Duration) {
		v, ok := raw[key]
		if !ok {
			return
		}
		switch d := v.(type) {
		case string:
			p, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil {
				bad(key, "not a duration: %q (use a number and a unit: 30s, 1m)", d)
				return
			}
			*dst = p
		case time.Duration:
			*dst = d
		case int:
			if d != 0 {
				bad(key, "want a duration with a unit such as 30s or 1m, got the number %d", d)
				return
			}
			*dst = 0
		case int64:
			if d != 0 {
				bad(key, "want a duration with a unit such as 30s or 1m, got the number %d", d)
				return
			}
			*dst = 0
		case float64:
			if d != 0 {
				bad(key, "want a duration with a unit such as 30s or 1m, got the number %v", d)
				return
			}
			*dst = 0
		default:
			bad(key, "want a duration such as 30s or 1m, got %T", v)
		}
	}
	number := func(key string, dst *float64) {
		v, ok := raw[key]
		if !ok {
			return
		}
		switch n := v.(type) {
		case int:
			*dst = float64(n)
		case int64:
			*dst = float64(n)
		case float64:
			if math.IsNaN(n) || math.IsInf(n, 0) {
				bad(key, "want a finite number, got %v", n)
				return
			}
			*dst = n
		case string: // from an environment variable, or quoted in YAML
			f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				bad(key, "want a number, got %q", n)
				return
			}
			*dst = f
		default:
			bad(key, "want a number, got %T", v)
		}
	}
	size := func(key string, dst *int64) {
		v, ok := raw[key]
		if !ok {
			return
		}
		n, err := bytesize.Parse(v)
		if err != nil {
			bad(key, "%v", err)
			return
		}
		*dst = n
	}
	transports := func(key string, dst *map[string][]string) {
		v, ok := raw[key]
		if !ok || v == nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			bad(key, "want a map of protocol name to a list of addresses, got %T", v)
			return
		}
		out := make(map[string][]string, len(m))
		for name, lv := range m {
			k := key + "." + name
			var addrs []string
			switch l := lv.(type) {
			case nil:
			case []string:
				addrs = l
			case []any:
				for i, e := range l {
					s, ok := e.(string)
					if !ok {
						bad(fmt.Sprintf("%s[%d]", k, i), "want a string, got %T", e)
						return
					}
					addrs = append(addrs, s)
				}
			default:
				bad(k, "want a list of addresses, got %T", lv)
				return
			}
			out[name] = addrs
		}
		*dst = out
	}
	str("data_dir", &c.DataDir)
	transports("transports", &c.Transports)
	list("listen", &c.ListenAddrs)
	list("bootstrap", &c.Bootstrap)
	duration("redial_max_backoff", &c.RedialMaxBackoff)
	integer("redial_max_peers", &c.RedialMaxPeers)
	str("dht_mode", &c.DHTMode)
	str("dht_prefix", &c.DHTPrefix)
	str("dht_scope", &c.DHTScope)
	integer("conn_low", &c.ConnLow)
	integer("conn_high", &c.ConnHigh)
	boolean("relay", &c.Relay)
	boolean("nat_service", &c.NATService)
	integer("mesh_d", &c.MeshD)
	str("pubsub_validation", &c.PubsubValidation)
	integer("validate_concurrency", &c.ValidateConcurrency)
	duration("validate_timeout", &c.ValidateTimeout)
	number("score_gossip_threshold", &c.Score.GossipThreshold)
	number("score_publish_threshold", &c.Score.PublishThreshold)
	number("score_graylist_threshold", &c.Score.GraylistThreshold)
	number("score_disconnect_threshold", &c.Score.DisconnectThreshold)
	duration("score_block_for", &c.Score.BlockFor)
	duration("score_app_half_life", &c.Score.AppHalfLife)
	size("direct_memory", &c.Direct.Memory)
	size("direct_memory_per_peer", &c.Direct.MemoryPerPeer)
	integer("direct_streams", &c.Direct.Streams)
	integer("direct_streams_per_peer", &c.Direct.StreamsPerPeer)
	duration("direct_idle_timeout", &c.Direct.IdleTimeout)
	duration("direct_timeout", &c.Direct.Timeout)
	size("resource_memory", &c.ResourceMemory)

	for i, a := range c.ListenAddrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			bad(fmt.Sprintf("listen[%d]", i), "not a multiaddr %q: %v", a, err)
		}
	}
	transportsOK := len(diags)
	checkTransportConfig(c.Transports, bad)
	if len(diags) == transportsOK {
		// A bootstrap peer may be reached over a plugin transport
		// (/x-mytcp/...): its protocol must be known to parse the
		// address. Registering is what Start does first anyway, and a
		// no-op for a name already registered.
		if _, err := registerTransports(c.Transports); err != nil {
			bad("transports", "%v", err)
		}
	}
	for i, a := range c.Bootstrap {
		if _, err := parsePeerAddr(a); err != nil {
			bad(fmt.Sprintf("bootstrap[%d]", i), "%v", err)
		}
	}
	if c.RedialMaxBackoff != 0 && (c.RedialMaxBackoff < redialMinBackoff || c.RedialMaxBackoff > 24*time.Hour) {
		bad("redial_max_backoff", "want 0 (no redialling) or 1s..24h, got %v", c.RedialMaxBackoff)
	}
	if c.RedialMaxPeers < 1 || c.RedialMaxPeers > 4096 {
		bad("redial_max_peers", "want 1..4096, got %d", c.RedialMaxPeers)
	}
	switch c.DHTMode {
	case "client", "server", "auto", "off":
	default:
		bad("dht_mode", "want client, server, auto or off, got %q", c.DHTMode)
	}
	switch c.DHTScope {
	case "all", "dual":
	default:
		bad("dht_scope", "want all or dual, got %q", c.DHTScope)
	}
	if c.ConnLow < 0 || c.ConnHigh < c.ConnLow {
		bad("conn_high", "want 0 <= conn_low <= conn_high, got %d and %d", c.ConnLow, c.ConnHigh)
	}
	if c.MeshD < 2 || c.MeshD > 32 {
		bad("mesh_d", "want 2..32, got %d", c.MeshD)
	}
	switch c.PubsubValidation {
	case PubsubValidationSkein, PubsubValidationNone:
	default:
		bad("pubsub_validation", "want %s or %s, got %q", PubsubValidationSkein, PubsubValidationNone, c.PubsubValidation)
	}
	checkLimits(c, bad)
	return c, diags
}

// checkLimits reports out-of-range validation, scoring and resource
// settings.
func checkLimits(c Config, bad func(key, format string, args ...any)) {
	if c.ValidateConcurrency < 1 || c.ValidateConcurrency > 4096 {
		bad("validate_concurrency", "want 1..4096, got %d", c.ValidateConcurrency)
	}
	if c.ValidateTimeout < 10*time.Millisecond || c.ValidateTimeout > time.Minute {
		bad("validate_timeout", "want 10ms..1m, got %v", c.ValidateTimeout)
	}
	s := c.Score
	switch {
	case s.GossipThreshold > 0:
		bad("score_gossip_threshold", "want <= 0, got %v", s.GossipThreshold)
	case s.PublishThreshold > s.GossipThreshold:
		bad("score_publish_threshold", "want <= score_gossip_threshold (%v), got %v", s.GossipThreshold, s.PublishThreshold)
	case s.GraylistThreshold > s.PublishThreshold:
		bad("score_graylist_threshold", "want <= score_publish_threshold (%v), got %v", s.PublishThreshold, s.GraylistThreshold)
	case s.DisconnectThreshold > s.GraylistThreshold:
		bad("score_disconnect_threshold", "want <= score_graylist_threshold (%v), got %v", s.GraylistThreshold, s.DisconnectThreshold)
	case s.DisconnectThreshold < appScoreFloor:
		bad("score_disconnect_threshold", "want >= %v (the lowest application score), got %v", float64(appScoreFloor), s.DisconnectThreshold)
	}
	if s.BlockFor < time.Second || s.BlockFor > 24*time.Hour {
		bad("score_block_for", "want 1s..24h, got %v", s.BlockFor)
	}
	if s.AppHalfLife < time.Second || s.AppHalfLife > 24*time.Hour {
		bad("score_app_half_life", "want 1s..24h, got %v", s.AppHalfLife)
	}
	d := c.Direct
	if d.MemoryPerPeer < MaxDirectMessage {
		bad("direct_memory_per_peer", "want at least %s (one largest frame), got %s", bytesize.Format(MaxDirectMessage), bytesize.Format(d.MemoryPerPeer))
	} else if d.Memory < d.MemoryPerPeer {
		bad("direct_memory", "want at least direct_memory_per_peer (%s), got %s", bytesize.Format(d.MemoryPerPeer), bytesize.Format(d.Memory))
	}
	if d.Streams < 1 || d.Streams > 65536 {
		bad("direct_streams", "want 1..65536, got %d", d.Streams)
	} else if d.StreamsPerPeer < 1 || d.StreamsPerPeer > d.Streams {
		bad("direct_streams_per_peer", "want 1..direct_streams (%d), got %d", d.Streams, d.StreamsPerPeer)
	}
	if d.Timeout < time.Second || d.Timeout > 10*time.Minute {
		bad("direct_timeout", "want 1s..10m, got %v", d.Timeout)
	} else if d.IdleTimeout < 100*time.Millisecond || d.IdleTimeout > d.Timeout {
		bad("direct_idle_timeout", "want 100ms..direct_timeout (%v), got %v", d.Timeout, d.IdleTimeout)
	}
	if c.ResourceMemory != 0 && c.ResourceMemory < d.Memory {
		bad("resource_memory", "want 0 (libp2p's default) or at least direct_memory (%s), got %s", bytesize.Format(d.Memory), bytesize.Format(c.ResourceMemory))
	}
}

// connGrace is how long a new connection is protected from trimming.
const connGrace = 30 * time.Second
