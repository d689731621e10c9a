package mdns

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Config is the plugin's config subtree (plugins.<name>.config), typed.
type Config struct {
	// Service is the DNS-SD service type peers are announced under,
	// "_<name>._udp" or "_<name>._tcp" (RFC 6763 section 7). Default
	// "_skein._udp". Nodes with different services do not see each other.
	Service string
	// Interfaces names the network interfaces to announce and listen on.
	// Default (empty): every interface that is up, multicast-capable and
	// not loopback, re-scanned as interfaces come and go. A loopback
	// interface is used only when named here.
	Interfaces []string
	// QueryInterval is how often peers are asked for while a search runs
	// (after 1 s, 2 s, 4 s ... up to this), how often live cached peers
	// are reported to the node again (so a failed dial is retried), and
	// the window of the peer budgets below. Default 30 s; 1 s to 1 h.
	QueryInterval time.Duration
	// MaxPeersPerInterval bounds the peers reported to the node per query
	// interval, all sources together: a LAN flooding fake peers cannot
	// make the node dial more than this. Default 32.
	MaxPeersPerInterval int
	// MaxPeersPerSource bounds the peers one sender (source address) may
	// introduce per query interval. Default 8.
	MaxPeersPerSource int
	// MaxCachedPeers bounds the peers remembered between queries; when
	// full, new peers are ignored until cached ones expire. Default 512.
	MaxCachedPeers int
}

// Defaults.
const (
	DefaultService             = "_skein._udp"
	DefaultQueryInterval       = 30 * time.Second
	DefaultMaxPeersPerInterval = 32
	DefaultMaxPeersPerSource   = 8
	DefaultMaxCachedPeers      = 512
)

// DefaultConfig returns the configuration every unset key takes.
func DefaultConfig() Config {
	return Config{
		Service:             DefaultService,
		QueryInterval:       DefaultQueryInterval,
		MaxPeersPerInterval: DefaultMaxPeersPerInterval,
		MaxPeersPerSource:   DefaultMaxPeersPerSource,
		MaxCachedPeers:      DefaultMaxCachedPeers,
	}
}

// Config keys.
const (
	KeyService             = "service"
	KeyInterfaces          = "interfaces"
	KeyQueryInterval       = "query_interval"
	KeyMaxPeersPerInterval = "max_peers_per_interval"
	KeyMaxPeersPerSource   = "max_peers_per_source"
	KeyMaxCachedPeers      = "max_cached_peers"
)

// ConfigSchema documents every key the plugin takes.
func ConfigSchema() []sdk.ConfigKey {
	d := DefaultConfig()
	return []sdk.ConfigKey{
		{Key: KeyService, Type: "string", Default: d.Service,
			Description: `DNS-SD service type announced and searched, "_<name>._udp" or "_<name>._tcp"; nodes with different services do not see each other`},
		{Key: KeyInterfaces, Type: "list", Default: "[]",
			Description: "interfaces to announce and listen on, by name; empty: every interface that is up, multicast-capable and not loopback (re-scanned as they come and go); loopback only when named"},
		{Key: KeyQueryInterval, Type: "duration", Default: d.QueryInterval.String(),
			Description: "how often peers are asked for while a search runs (1s, 2s, 4s ... up to this), how often cached peers are reported again, and the window of the peer budgets; 1s to 1h"},
		{Key: KeyMaxPeersPerInterval, Type: "int", Default: fmt.Sprint(d.MaxPeersPerInterval),
			Description: "most peers reported to the node (and so dialled) per query interval, all senders together; 1..4096"},
		{Key: KeyMaxPeersPerSource, Type: "int", Default: fmt.Sprint(d.MaxPeersPerSource),
			Description: "most new peers one sender (source address) may introduce per query interval; 1..4096"},
		{Key: KeyMaxCachedPeers, Type: "int", Default: fmt.Sprint(d.MaxCachedPeers),
			Description: "most peers remembered between queries; when full, new peers wait until cached ones expire; 1..65536"},
	}
}

// ParseConfig turns a config subtree into a Config. Every problem is a
// diagnostic naming its key; it never panics. The Config is meaningful
// only when no diagnostic is an error.
func ParseConfig(raw map[string]any) (Config, []sdk.Diagnostic) {
	c := DefaultConfig()
	var diags []sdk.Diagnostic
	bad := func(key, format string, args ...any) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	known := []string{}
	for _, k := range ConfigSchema() {
		known = append(known, k.Key)
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if !slices.Contains(known, k) {
			bad(k, "unknown key (known: %s)", strings.Join(known, ", "))
		}
	}

	if v, ok := raw[KeyService]; ok && v != nil {
		s, ok := v.(string)
		switch {
		case !ok:
			bad(KeyService, "want a string such as %q, got %T", DefaultService, v)
		default:
			if err := checkService(s); err != nil {
				bad(KeyService, "%v", err)
			} else {
				c.Service = strings.ToLower(s)
			}
		}
	}

	if v, ok := raw[KeyInterfaces]; ok && v != nil {
		var names []string
		switch l := v.(type) {
		case []string:
			names = l
		case []any:
			for i, e := range l {
				s, ok := e.(string)
				if !ok {
					bad(fmt.Sprintf("%s[%d]", KeyInterfaces, i), "want an interface name, got %T", e)
					continue
				}
				names = append(names, s)
			}
		default:
			bad(KeyInterfaces, "want a list of interface names, got %T", v)
		}
		for i, n := range names {
			if n == "" || len(n) > 15 || strings.ContainsAny(n, "/ \t\n\x00") {
				bad(fmt.Sprintf("%s[%d]", KeyInterfaces, i), "%q is not an interface name (1 to 15 characters, no '/' or space)", n)
			}
		}
		c.Interfaces = names
	}

	if v, ok := raw[KeyQueryInterval]; ok && v != nil {
		d, err := parseDuration(v)
		switch {
		case err != nil:
			bad(KeyQueryInterval, "%v", err)
		case d < time.Second || d > time.Hour:
			bad(KeyQueryInterval, "%s is out of range: 1s to 1h", d)
		default:
			c.QueryInterval = d
		}
	}

	for _, k := range []struct {
		key      string
		dst      *int
		min, max int
	}{
		{KeyMaxPeersPerInterval, &c.MaxPeersPerInterval, 1, 4096},
		{KeyMaxPeersPerSource, &c.MaxPeersPerSource, 1, 4096},
		{KeyMaxCachedPeers, &c.MaxCachedPeers, 1, 65536},
	} {
		v, ok := raw[k.key]
		if !ok || v == nil {
			continue
		}
		n, err := parseInt(v)
		switch {
		case err != nil:
			bad(k.key, "%v", err)
		case n < k.min || n > k.max:
			bad(k.key, "%d is out of range: %d..%d", n, k.min, k.max)
		default:
			*k.dst = n
		}
	}
	return c, diags
}

// checkService validates a DNS-SD service type: "_name._udp" or
// "_name._tcp", name 1 to 15 letters, digits and hyphens (RFC 6763 7.2).
func checkService(s string) error {
	s = strings.ToLower(s)
	name, proto, ok := strings.Cut(s, ".")
	if !ok || (proto != "_udp" && proto != "_tcp") || !strings.HasPrefix(name, "_") {
		return fmt.Errorf("%q is not a DNS-SD service type: want \"_<name>._udp\" or \"_<name>._tcp\", e.g. %q", s, DefaultService)
	}
	name = name[1:]
	if len(name) < 1 || len(name) > 15 || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return fmt.Errorf("%q: the service name must be 1 to 15 characters, not starting or ending with '-'", s)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("%q: the service name may hold only letters, digits and '-'", s)
		}
	}
	return nil
}

func parseDuration(v any) (time.Duration, error) {
	switch d := v.(type) {
	case string:
		p, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return 0, fmt.Errorf("not a duration: %q (use a number and a unit: 30s, 1m)", d)
		}
		return p, nil
	case time.Duration:
		return d, nil
	default:
		return 0, fmt.Errorf("want a duration such as 30s or 1m, got %T", v)
	}
}

func parseInt(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		if n < -1<<31 || n > 1<<31-1 {
			return 0, fmt.Errorf("%d is out of range", n)
		}
		return int(n), nil
	case uint64:
		if n > 1<<31-1 {
			return 0, fmt.Errorf("%d is out of range", n)
		}
		return int(n), nil
	case float64:
		if n != float64(int64(n)) || n < -1<<31 || n > 1<<31-1 {
			return 0, fmt.Errorf("want an integer, got %v", n)
		}
		return int(n), nil
	default:
		return 0, fmt.Errorf("want an integer, got %T", v)
	}
}
