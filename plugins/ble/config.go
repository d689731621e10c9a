package ble

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Config is the plugin's config subtree (plugins.<name>.config), typed.
type Config struct {
	// Driver is "bluez" (Linux, the real stack; the default) or "sim"
	// (the simulated radio).
	Driver string
	// MaxLinks caps this device's links (dialled and accepted together);
	// a dial beyond it fails and an inbound link beyond it is closed.
	// Default 4.
	MaxLinks int
	// StallTimeout: a peer that grants no credit (reads nothing) for this
	// long is cut off. Default 30 s.
	StallTimeout time.Duration
	// DialBackoff is the first wait after a failed dial to an address,
	// doubled at each failure up to DialBackoffMax. Defaults 1 s and 1 min.
	DialBackoff, DialBackoffMax time.Duration
	// MaxDevices bounds the devices remembered from scanning; when full,
	// new ones are ignored until old ones expire. Default 256.
	MaxDevices int
	// HandshakesPerMinute bounds the identity reads (GATT connections to
	// devices heard advertising) per minute: a crowd of fake advertisers
	// cannot keep the radio busy. Default 30.
	HandshakesPerMinute int
	// ReportInterval is how often peers found are reported to the node
	// again (so that a lost link is dialled again), and how long a device
	// not heard stays remembered is 3 of them. Default 10 s.
	ReportInterval time.Duration
	// TieBreakWait is how long a peer with a larger peer id than this
	// node's waits for it to dial before it is reported anyway (the
	// smaller id dials). Default 10 s.
	TieBreakWait time.Duration

	// Adapter is the BlueZ adapter (driver bluez). Default "hci0".
	Adapter string
	// ChannelMTU is the receive MTU asked of L2CAP channels (driver
	// bluez). Default 2048.
	ChannelMTU int
	// GATTFallback carries a link over a GATT byte stream when the peer
	// refuses L2CAP channels. Default true.
	GATTFallback bool
	// GATTOnly dials every link over the GATT byte stream, never an
	// L2CAP channel: to test the fallback. Default false.
	GATTOnly bool

	// SimMedium names the simulated medium (driver sim); devices on
	// different media never meet. Default "default".
	SimMedium string
	// SimHub is a unix socket path: the medium is shared with the sim
	// drivers of other processes naming the same path (the first serves
	// it); empty: the medium lives in this process.
	SimHub string
	// SimDevice is the device's name on the medium; empty picks one.
	SimDevice string
	// SimSeed seeds the medium's loss generators (0: keep the medium's).
	SimSeed uint64
	// Sim holds the simulated radio's figures.
	Sim SimParams
}

// Defaults.
const (
	DefaultDriver              = "bluez"
	DefaultMaxLinks            = 4
	DefaultStallTimeout        = 30 * time.Second
	DefaultDialBackoff         = time.Second
	DefaultDialBackoffMax      = time.Minute
	DefaultMaxDevices          = 256
	DefaultHandshakesPerMinute = 30
	DefaultReportInterval      = 10 * time.Second
	DefaultTieBreakWait        = 10 * time.Second
	DefaultAdapter             = "hci0"
	DefaultChannelMTU          = 2048
	DefaultSimMedium           = "default"
)

// DefaultConfig returns the configuration every unset key takes.
func DefaultConfig() Config {
	return Config{
		Driver: DefaultDriver, MaxLinks: DefaultMaxLinks, StallTimeout: DefaultStallTimeout,
		DialBackoff: DefaultDialBackoff, DialBackoffMax: DefaultDialBackoffMax, MaxDevices: DefaultMaxDevices,
		HandshakesPerMinute: DefaultHandshakesPerMinute, ReportInterval: DefaultReportInterval,
		TieBreakWait: DefaultTieBreakWait, Adapter: DefaultAdapter, ChannelMTU: DefaultChannelMTU,
		GATTFallback: true, SimMedium: DefaultSimMedium, Sim: DefaultSimParams(),
	}
}

// ConfigSchema documents every key.
func ConfigSchema() []sdk.ConfigKey {
	d := DefaultConfig()
	return []sdk.ConfigKey{
		{Key: "driver", Type: "string", Default: d.Driver, Description: "bluez: the Linux Bluetooth stack (BlueZ over D-Bus, L2CAP channels); sim: the simulated radio, for tests and experiments"},
		{Key: "max_links", Type: "int", Default: strconv.Itoa(d.MaxLinks), Description: "links this device keeps at once, dialled and accepted; 1 to 64"},
		{Key: "stall_timeout", Type: "duration", Default: d.StallTimeout.String(), Description: "a peer that takes no data for this long is cut off; 1s to 10m"},
		{Key: "dial_backoff", Type: "duration", Default: d.DialBackoff.String(), Description: "first wait after a failed dial to an address, doubled at each failure"},
		{Key: "dial_backoff_max", Type: "duration", Default: d.DialBackoffMax.String(), Description: "longest wait between dials to an address that keeps failing"},
		{Key: "max_devices", Type: "int", Default: strconv.Itoa(d.MaxDevices), Description: "devices remembered from scanning; beyond it new ones are ignored until old ones expire"},
		{Key: "handshakes_per_minute", Type: "int", Default: strconv.Itoa(d.HandshakesPerMinute), Description: "identity reads (GATT connections to devices heard advertising) per minute, at most"},
		{Key: "report_interval", Type: "duration", Default: d.ReportInterval.String(), Description: "how often peers found are reported to the node again; a device not heard for 3 of them is forgotten"},
		{Key: "tie_break_wait", Type: "duration", Default: d.TieBreakWait.String(), Description: "the peer with the smaller peer id dials; the other reports it only if no link came within this wait"},
		{Key: "adapter", Type: "string", Default: d.Adapter, Description: "driver bluez: the adapter to use (hci0, hci1, ...)"},
		{Key: "channel_mtu", Type: "int", Default: strconv.Itoa(d.ChannelMTU), Description: "driver bluez: receive MTU of L2CAP channels; 23 to 65535"},
		{Key: "gatt_fallback", Type: "bool", Default: strconv.FormatBool(d.GATTFallback), Description: "carry a link over a GATT byte stream (sequence numbers, acks, a window) when the peer refuses L2CAP channels"},
		{Key: "gatt_only", Type: "bool", Default: "false", Description: "dial every link over the GATT byte stream, never an L2CAP channel (to test the fallback; slower)"},
		{Key: "sim_medium", Type: "string", Default: d.SimMedium, Description: "driver sim: the simulated medium; devices on different media never meet"},
		{Key: "sim_hub", Type: "string", Default: "", Description: "driver sim: unix socket path of a medium shared by processes (the first plugin naming it serves it); empty: the medium lives in this process"},
		{Key: "sim_device", Type: "string", Default: "", Description: "driver sim: this device's name on the medium; empty picks sim-N"},
		{Key: "sim_seed", Type: "int", Default: "0", Description: "driver sim: seed of the medium's loss generators; 0 keeps the medium's"},
		{Key: "sim_mtu", Type: "int", Default: strconv.Itoa(d.Sim.MTU), Description: "driver sim: largest packet on a link (phones offer 23, 185, 517); 23 to 65535"},
		{Key: "sim_bandwidth", Type: "int", Default: strconv.FormatInt(d.Sim.Bandwidth, 10), Description: "driver sim: bytes per second each way (31250 is 250 kbit/s); 0: unlimited"},
		{Key: "sim_latency", Type: "duration", Default: d.Sim.Latency.String(), Description: "driver sim: one-way delay of a packet"},
		{Key: "sim_loss", Type: "number", Default: "0", Description: "driver sim: probability that a packet must be sent again, 0 to 0.9"},
		{Key: "sim_range", Type: "number", Default: "0", Description: "driver sim: how far the radio reaches, in the unit of sim_position; 0: the whole medium"},
		{Key: "sim_position", Type: "list", Default: "[0 0]", Description: "driver sim: the device's position [x, y]"},
		{Key: "sim_channels", Type: "bool", Default: "true", Description: "driver sim: the device accepts L2CAP channels; false: it refuses them, and a dialler with gatt_fallback carries the link over a GATT byte stream"},
		{Key: "sim_max_links", Type: "int", Default: strconv.Itoa(d.Sim.MaxLinks), Description: "driver sim: links the simulated controller holds at once (a link to itself counts twice)"},
		{Key: "sim_advertise_interval", Type: "duration", Default: d.Sim.AdvertiseInterval.String(), Description: "driver sim: how often advertisements are heard"},
	}
}

var adapterRE = regexp.MustCompile(`^hci[0-9]{1,3}$`)

// ParseConfig checks raw and returns the config with defaults for what
// is unset; every problem is a diagnostic naming its key.
func ParseConfig(raw map[string]any) (Config, []sdk.Diagnostic) {
	cfg := DefaultConfig()
	var diags []sdk.Diagnostic
	bad := func(key, format string, args ...any) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		var err error
		switch k {
		case "driver":
			cfg.Driver, err = parseString(v)
			if err == nil && cfg.Driver != "bluez" && cfg.Driver != "sim" {
				err = fmt.Errorf("%q: want bluez or sim", cfg.Driver)
			}
		case "max_links":
			cfg.MaxLinks, err = parseIntIn(v, 1, 64)
		case "stall_timeout":
			cfg.StallTimeout, err = parseDurationIn(v, time.Second, 10*time.Minute)
		case "dial_backoff":
			cfg.DialBackoff, err = parseDurationIn(v, 10*time.Millisecond, time.Hour)
		case "dial_backoff_max":
			cfg.DialBackoffMax, err = parseDurationIn(v, 10*time.Millisecond, 24*time.Hour)
		case "max_devices":
			cfg.MaxDevices, err = parseIntIn(v, 1, 65536)
		case "handshakes_per_minute":
			cfg.HandshakesPerMinute, err = parseIntIn(v, 1, 6000)
		case "report_interval":
			cfg.ReportInterval, err = parseDurationIn(v, 100*time.Millisecond, time.Hour)
		case "tie_break_wait":
			cfg.TieBreakWait, err = parseDurationIn(v, 0, time.Hour)
		case "adapter":
			cfg.Adapter, err = parseString(v)
			if err == nil && !adapterRE.MatchString(cfg.Adapter) {
				err = fmt.Errorf("%q: want hciN", cfg.Adapter)
			}
		case "channel_mtu":
			cfg.ChannelMTU, err = parseIntIn(v, 23, 65535)
		case "gatt_fallback":
			b, ok := v.(bool)
			if !ok {
				err = fmt.Errorf("want true or false, got %T", v)
			}
			cfg.GATTFallback = b
		case "gatt_only":
			b, ok := v.(bool)
			if !ok {
				err = fmt.Errorf("want true or false, got %T", v)
			}
			cfg.GATTOnly = b
		case "sim_medium":
			cfg.SimMedium, err = parseString(v)
			if err == nil && cfg.SimMedium == "" {
				err = fmt.Errorf("empty")
			}
		case "sim_hub":
			cfg.SimHub, err = parseString(v)
			if err == nil && len(cfg.SimHub) > 100 {
				err = fmt.Errorf("%d bytes: a unix socket path has at most 100", len(cfg.SimHub))
			}
		case "sim_device":
			cfg.SimDevice, err = parseString(v)
			if err == nil && cfg.SimDevice != "" && !simNameRE.MatchString(cfg.SimDevice) {
				err = fmt.Errorf("%q: want 1-32 of A-Z, a-z, 0-9, '.', '_', '-'", cfg.SimDevice)
			}
		case "sim_seed":
			var n int
			n, err = parseIntIn(v, 0, 1<<62)
			cfg.SimSeed = uint64(n)
		case "sim_mtu":
			cfg.Sim.MTU, err = parseIntIn(v, 23, 65535)
		case "sim_bandwidth":
			var n int
			n, err = parseIntIn(v, 0, 1<<40)
			cfg.Sim.Bandwidth = int64(n)
		case "sim_latency":
			cfg.Sim.Latency, err = parseDurationIn(v, 0, time.Minute)
		case "sim_loss":
			cfg.Sim.Loss, err = parseFloatIn(v, 0, 0.9)
		case "sim_range":
			cfg.Sim.Range, err = parseFloatIn(v, 0, 1e9)
		case "sim_position":
			cfg.Sim.X, cfg.Sim.Y, err = parsePosition(v)
		case "sim_channels":
			b, ok := v.(bool)
			if !ok {
				err = fmt.Errorf("want true or false, got %T", v)
			}
			cfg.Sim.NoChannels = !b
		case "sim_max_links":
			cfg.Sim.MaxLinks, err = parseIntIn(v, 1, 256)
		case "sim_advertise_interval":
			cfg.Sim.AdvertiseInterval, err = parseDurationIn(v, time.Millisecond, time.Minute)
		default:
			err = fmt.Errorf("unknown key (keys: %s)", schemaKeys())
		}
		if err != nil {
			bad(k, "%v", err)
		}
	}
	if cfg.DialBackoffMax < cfg.DialBackoff {
		bad("dial_backoff_max", "%s is less than dial_backoff %s", cfg.DialBackoffMax, cfg.DialBackoff)
	}
	cfg.Sim.GATTFallback = cfg.GATTFallback
	cfg.Sim.GATTOnly = cfg.GATTOnly
	return cfg, diags
}

func schemaKeys() string {
	var s string
	for i, k := range ConfigSchema() {
		if i > 0 {
			s += ", "
		}
		s += k.Key
	}
	return s
}

func parseString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %T", v)
	}
	return s, nil
}

func parseIntIn(v any, lo, hi int) (int, error) {
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case uint64:
		if x > 1<<62 {
			return 0, fmt.Errorf("%d: out of range", x)
		}
		n = int(x)
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("%v: want a whole number", x)
		}
		n = int(x)
	case string:
		var err error
		if n, err = strconv.Atoi(x); err != nil {
			return 0, fmt.Errorf("%q: want a whole number", x)
		}
	default:
		return 0, fmt.Errorf("want a whole number, got %T", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d: want %d to %d", n, lo, hi)
	}
	return n, nil
}

func parseFloatIn(v any, lo, hi float64) (float64, error) {
	var f float64
	switch x := v.(type) {
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(x, 64); err != nil {
			return 0, fmt.Errorf("%q: want a number", x)
		}
	default:
		return 0, fmt.Errorf("want a number, got %T", v)
	}
	if !(f >= lo && f <= hi) {
		return 0, fmt.Errorf("%v: want %v to %v", f, lo, hi)
	}
	return f, nil
}

func parseDurationIn(v any, lo, hi time.Duration) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			return 0, fmt.Errorf("%q: want a duration such as 10s", x)
		}
	case time.Duration:
		d = x
	default:
		return 0, fmt.Errorf("want a duration such as \"10s\", got %T", v)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s: want %s to %s", d, lo, hi)
	}
	return d, nil
}

func parsePosition(v any) (float64, float64, error) {
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return 0, 0, fmt.Errorf("want [x, y]")
	}
	x, err := parseFloatIn(l[0], -1e9, 1e9)
	if err != nil {
		return 0, 0, fmt.Errorf("x: %v", err)
	}
	y, err := parseFloatIn(l[1], -1e9, 1e9)
	if err != nil {
		return 0, 0, fmt.Errorf("y: %v", err)
	}
	return x, y, nil
}
