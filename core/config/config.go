package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"sort"
	"time"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// DefaultYAML returns the embedded defaults: every key, commented, with its
// default value. config.example.yaml at the repository root is a copy.
func DefaultYAML() []byte { return bytes.Clone(defaultsYAML) }

// Mode says where a plugin runs.
type Mode string

// Plugin modes.
const (
	// ModeProcess runs the plugin in its own process, launched and
	// supervised by core/pluginhost. A crash restarts the plugin, not the node.
	ModeProcess Mode = "process"
	// ModeLinked runs a built-in plugin inside the node's process.
	ModeLinked Mode = "linked"
	// ModeReattach attaches to a plugin started by hand in debug mode
	// (SKEIN_PLUGIN_DEBUG=1), from the JSON it printed (Plugin.Reattach).
	ModeReattach Mode = "reattach"
)

// Config is a node's validated configuration. Paths in it are absolute.
type Config struct {
	// Node holds the node's own settings.
	Node Node `koanf:"node"`
	// API configures the client API (served from a later release; validated now).
	API API `koanf:"api"`
	// Replication configures how groups are kept in sync with peers and
	// the replication-node role.
	Replication Replication `koanf:"replication"`
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics `koanf:"metrics"`
	// Plugins maps a plugin name of the user's choosing to its settings.
	// Disabled entries are kept; PluginNames lists the enabled ones.
	Plugins map[string]Plugin `koanf:"plugins"`

	sources *sourceIndex
}

// Node holds the node's own settings.
type Node struct {
	// DataDir holds the keystore, config and plugin data. Default ~/.skein.
	DataDir string `koanf:"data_dir"`
	// Log configures the node's log on stderr.
	Log Log `koanf:"log"`
	// ShutdownTimeout bounds a clean stop; plugins still running after it
	// are killed. Default 10s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// Log configures logging.
type Log struct {
	// Level is the minimum level logged: debug, info (default), warn, error.
	Level string `koanf:"level"`
	// Format is text (default) or json.
	Format string `koanf:"format"`
}

// API configures the client API.
type API struct {
	// Socket is the unix socket path. Default (empty): <data_dir>/skein.sock.
	Socket string `koanf:"socket"`
	// TCP is an optional host:port listen address; empty means no TCP
	// listener. Requires TokenFile.
	TCP string `koanf:"tcp"`
	// TokenFile holds the bearer token TCP clients present. Required with TCP.
	TokenFile string `koanf:"token_file"`
}

// Metrics configures the node's Prometheus endpoint.
type Metrics struct {
	// Listen is the host:port the endpoint (GET /metrics) listens on, e.g.
	// 127.0.0.1:9464. Default (empty): no endpoint. The figures name
	// groups (by fingerprint) and plugins: keep it on loopback or behind
	// a firewall.
	Listen string `koanf:"listen"`
	// Pprof also serves Go's profiles under /debug/pprof/ on Listen (what
	// `skein bench --profile` reads). Default false.
	Pprof bool `koanf:"pprof"`
}

// Replication configures group replication.
type Replication struct {
	// AntiEntropyInterval is how often every log's heads are published as
	// a digest, missing entries retried and heads exchanged with a few
	// peers. Default 10s.
	AntiEntropyInterval time.Duration `koanf:"anti_entropy_interval"`
	// MissingRetry is the first retry delay of heads still missing when
	// a join ends (an ancestor not served yet, a writer whose permission
	// has not arrived): they are retried after it, then twice as long
	// each time up to 30s, with the peers that named them, instead of
	// waiting for the anti-entropy round. 0 turns it off. Default 1s.
	MissingRetry time.Duration `koanf:"missing_retry"`
	// RendezvousInterval is how often the members of each group are looked
	// up through the network's content routing (the DHT) and the node's
	// own rendezvous provided; 0 turns it off. Default 10m.
	RendezvousInterval time.Duration `koanf:"rendezvous_interval"`
	// Serve makes the node a replication node: it stores and serves the
	// groups members register with it (they need its token: `skein
	// replication token`), without being able to read them. Default false.
	Serve bool `koanf:"serve"`
	// SecretFile holds the registration secret (64 hex digits), created
	// 0600 on first start if missing. Default (empty):
	// <data_dir>/replication.secret.
	SecretFile string `koanf:"secret_file"`
	// MaxGroups bounds the groups a replication node accepts. Default 10000.
	MaxGroups int `koanf:"max_groups"`
}

// Plugin configures one plugin. Keys a config entry leaves out take the
// values of the default "store" entry in defaults.yaml.
type Plugin struct {
	// Enabled false keeps the entry without loading the plugin. Default true.
	Enabled bool `koanf:"enabled"`
	// ID is the namespaced plugin ID, <kind>.<name>, e.g. store.pebble. Required.
	ID string `koanf:"id"`
	// Mode is process (default), linked (built-ins only) or reattach.
	Mode Mode `koanf:"mode"`
	// Path is the plugin binary. Empty: a built-in served by re-executing the
	// skein binary. Only with ModeProcess.
	Path string `koanf:"path"`
	// SHA256 is the lower-case hex sha256 the binary at Path must have.
	// Only with Path.
	SHA256 string `koanf:"sha256"`
	// Args are extra arguments for the binary at Path.
	Args []string `koanf:"args"`
	// PassEnv names host environment variables passed to the plugin in
	// addition to the host's allow-list.
	PassEnv []string `koanf:"pass_env"`
	// Env sets variables in the plugin's environment.
	Env map[string]string `koanf:"env"`
	// Reattach is the reattach JSON of a plugin started by hand
	// (ModeReattach only).
	Reattach string `koanf:"reattach"`
	// StartTimeout bounds launch + handshake and each of Describe,
	// Configure and Start. Default 10s.
	StartTimeout time.Duration `koanf:"start_timeout"`
	// StopTimeout bounds a graceful Stop before the process is killed.
	// Default 5s.
	StopTimeout time.Duration `koanf:"stop_timeout"`
	// Restart is the restart policy after a crash.
	Restart Restart `koanf:"restart"`
	// Config is the plugin's own subtree, passed to its Configure as is,
	// except that "${node.data_dir}" in strings is replaced by Node.DataDir.
	Config map[string]any `koanf:"config"`
}

// Restart is a plugin's restart policy: exponential backoff from
// InitialBackoff, doubling up to MaxBackoff.
type Restart struct {
	// InitialBackoff is the wait before the first restart. Default 250ms.
	InitialBackoff time.Duration `koanf:"initial_backoff"`
	// MaxBackoff caps the wait between restarts. Default 30s.
	MaxBackoff time.Duration `koanf:"max_backoff"`
}

// PluginNames returns the names of the enabled plugins, sorted.
func (c *Config) PluginNames() []string {
	names := make([]string, 0, len(c.Plugins))
	for name, p := range c.Plugins {
		if p.Enabled {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Source names where the value of key (a dotted path such as
// "plugins.store.sha256") came from: "defaults", a file path, "env VAR" or
// "flag --name". For a key no source set, it names the source of the
// nearest enclosing section.
func (c *Config) Source(key string) string {
	if c == nil || c.sources == nil {
		return sourceDefaults
	}
	return c.sources.lookup(key).label
}

// Diagnostic is one problem a plugin's Configure found in its config
// subtree (the fields of sdk.Diagnostic; core/config does not import the
// sdk, which carries the plugin runtime).
type Diagnostic struct {
	// Warning is true for a warning, false for an error.
	Warning bool
	// Key is the offending key inside the subtree ("" for the whole).
	Key     string
	Message string
}

// PluginProblems turns the diagnostics a plugin's Configure returned into
// problems keyed plugins.<name>.config.<key>, naming the source that set the
// key. Errors come back in problems, warnings in warnings.
func (c *Config) PluginProblems(name string, diags []Diagnostic) (problems, warnings []Problem) {
	for _, d := range diags {
		key := "plugins." + name + ".config"
		if d.Key != "" {
			key += "." + d.Key
		}
		p := Problem{Source: c.Source(key), Key: key, Message: d.Message}
		if d.Warning {
			warnings = append(warnings, p)
		} else {
			problems = append(problems, p)
		}
	}
	return problems, warnings
}

// String describes the plugin for logs: ID, mode and where its code comes from.
func (p Plugin) String() string {
	where := "built in"
	if p.Path != "" {
		where = p.Path
	}
	return fmt.Sprintf("%s (%s, %s)", p.ID, p.Mode, where)
}
