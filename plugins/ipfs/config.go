package ipfs

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"

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
	// Transports maps the multiaddr protocol name of each transport plugin
	// the node may attach (its Protocol(), e.g. "x-unix-pipe") to the
	// transport-specific addresses the host listens on once it is attached
	// (none: dial only). A protocol is registered when the host starts;
	// attaching a transport whose protocol is not listed here is refused.
	// Default none.
	Transports map[string][]string
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
	return c, diags
}

// connGrace is how long a new connection is protected from trimming.
const connGrace = 30 * time.Second
