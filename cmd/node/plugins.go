package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

func (c *cli) pluginsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List, describe and verify the configured plugins",
	}
	cmd.AddCommand(c.pluginsListCommand(), c.pluginsDescribeCommand(), c.pluginsVerifyCommand(), c.pluginsStatusCommand())
	return cmd
}

// builtinEntry is one plugin built into this binary as `plugins list`
// shows it.
type builtinEntry struct {
	ID      string     `json:"id"`
	Kinds   []sdk.Kind `json:"kinds"`
	Version string     `json:"version"`
}

// builtins describes every plugin built into the binary (Describe on a
// fresh instance: no side effects).
func builtins(ctx context.Context) []builtinEntry {
	out := []builtinEntry{}
	for _, id := range pluginhost.Registered() {
		f, _ := pluginhost.Lookup(id)
		e := builtinEntry{ID: id, Kinds: []sdk.Kind{}}
		if d, err := f().Describe(ctx); err == nil {
			e.Kinds, e.Version = d.Kinds, d.Version
		}
		out = append(out, e)
	}
	return out
}

// listResult is what `plugins list --json` prints.
type listResult struct {
	Configured []pluginEntry  `json:"configured"`
	BuiltIn    []builtinEntry `json:"built_in"`
}

// pluginEntry is one configured plugin as `plugins list` shows it.
type pluginEntry struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Enabled bool   `json:"enabled"`
	Mode    string `json:"mode"`
	Binary  string `json:"binary"` // "built in" or the path
	SHA256  string `json:"sha256,omitempty"`
}

func entryOf(name string, p config.Plugin) pluginEntry {
	bin := "built in"
	if p.Path != "" {
		bin = p.Path
	}
	return pluginEntry{Name: name, ID: p.ID, Enabled: p.Enabled, Mode: string(p.Mode), Binary: bin, SHA256: p.SHA256}
}

func (c *cli) pluginsListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the plugins in the config and the plugins built in (starts nothing)",
		Long: `list shows the plugins the config names (enabled or not) and every plugin
built into this binary, with its kinds: any of them can be named by its ID in
a config entry (plugins.<name>.id). External plugins are loaded by path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := c.load(cmd)
			if err != nil {
				return err
			}
			res := listResult{Configured: []pluginEntry{}, BuiltIn: builtins(cmd.Context())}
			for _, name := range sortedNames(cfg) {
				res.Configured = append(res.Configured, entryOf(name, cfg.Plugins[name]))
			}
			if asJSON {
				return c.writeJSON(res)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONFIGURED\tID\tMODE\tBINARY\tENABLED")
			for _, e := range res.Configured {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", e.Name, e.ID, e.Mode, e.Binary, e.Enabled)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout)
			tw = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BUILT IN\tKINDS\tVERSION")
			for _, e := range res.BuiltIn {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.ID, joinKinds(e.Kinds), e.Version)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// sortedNames lists every configured plugin, enabled or not.
func sortedNames(cfg *config.Config) []string {
	var names []string
	for name := range cfg.Plugins {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// describeResult is what `plugins describe` prints.
type describeResult struct {
	Name         string          `json:"name"`
	ID           string          `json:"id"`
	Version      string          `json:"version"`
	Kinds        []sdk.Kind      `json:"kinds"`
	Capabilities []string        `json:"capabilities"`
	ConfigSchema []sdk.ConfigKey `json:"config_schema"`
	Mode         string          `json:"mode"`
	PID          int             `json:"pid,omitempty"`
}

func (c *cli) pluginsDescribeCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe <name>",
		Short: "Start one plugin as configured and print what it says about itself",
		Long: `describe launches the named plugin as the config says (checksum, handshake,
Describe, Configure, Start), prints its ID, version, kinds, capabilities and
the config keys it takes, and stops it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := c.load(cmd)
			if err != nil {
				return err
			}
			name := args[0]
			if _, ok := cfg.Plugins[name]; !ok {
				return fmt.Errorf("no plugin named %q in the config (configured: %s)", name, strings.Join(sortedNames(cfg), ", "))
			}
			release, err := node.LockDataDir(cfg.Node.DataDir)
			if err != nil {
				return err // a node runs there: its plugins hold their data
			}
			defer release()
			logger := c.configLogger(cfg)
			res, err := c.probe(cmd.Context(), cfg, logger, name)
			if err != nil {
				return err
			}
			d := res.desc
			out := describeResult{Name: name, ID: d.ID, Version: d.Version, Kinds: d.Kinds,
				Capabilities: d.Capabilities, ConfigSchema: d.ConfigSchema, Mode: res.mode, PID: res.pid}
			if asJSON {
				return c.writeJSON(out)
			}
			fmt.Fprintf(c.stdout, "%s: %s %s (%s", name, d.ID, d.Version, res.mode)
			if res.pid != 0 {
				fmt.Fprintf(c.stdout, ", pid %d", res.pid)
			}
			fmt.Fprintf(c.stdout, ")\n  kinds         %s\n  capabilities  %s\n  config keys (plugins.%s.config):\n", joinKinds(d.Kinds), strings.Join(d.Capabilities, ", "), name)
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			for _, k := range d.ConfigSchema {
				req := ""
				if k.Required {
					req = " (required)"
				}
				def := k.Default
				if def == "" {
					def = "-"
				}
				fmt.Fprintf(tw, "    %s\t%s\tdefault %s\t%s%s\n", k.Key, k.Type, def, k.Description, req)
			}
			if len(d.ConfigSchema) == 0 {
				fmt.Fprintln(tw, "    (none)")
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func joinKinds(ks []sdk.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// probeResult is one plugin started and stopped again.
type probeResult struct {
	desc    sdk.Description
	mode    string
	pid     int
	took    time.Duration
	status  sdk.Status
	statErr error
}

// probe launches the plugin name as configured, asks its status, and stops it.
func (c *cli) probe(ctx context.Context, cfg *config.Config, logger *slog.Logger, name string) (*probeResult, error) {
	host := pluginhost.New(logger)
	defer stopHost(cfg, logger, host)
	res, _, err := launchProbe(ctx, cfg, logger, host, name)
	return res, err
}

// launchProbe launches the plugin name on host as configured and asks its
// status; the plugin keeps running.
func launchProbe(ctx context.Context, cfg *config.Config, logger *slog.Logger, host *pluginhost.Host, name string) (*probeResult, *pluginhost.Plugin, error) {
	n, err := node.New(cfg, node.WithLogger(logger))
	if err != nil {
		return nil, nil, err
	}
	spec, err := n.Spec(name)
	if err != nil {
		return nil, nil, err
	}
	t0 := time.Now()
	p, err := host.Launch(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	res := &probeResult{desc: p.Description(), mode: spec.Mode.String(), pid: p.PID(), took: time.Since(t0)}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res.status, res.statErr = p.Status(sctx)
	return res, p, nil
}

// stopHost stops every plugin of host within node.shutdown_timeout.
func stopHost(cfg *config.Config, logger *slog.Logger, host *pluginhost.Host) {
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
	defer cancel()
	if err := host.Stop(stopCtx); err != nil {
		logger.Warn("stop plugins", "error", err)
	}
}

// verifyResult is one plugin's verdict in `plugins verify`.
type verifyResult struct {
	Name      string        `json:"name"`
	ID        string        `json:"id"`
	OK        bool          `json:"ok"`
	Version   string        `json:"version,omitempty"`
	Mode      string        `json:"mode"`
	PID       int           `json:"pid,omitempty"`
	StartTime time.Duration `json:"start_time_ns,omitempty"`
	Healthy   bool          `json:"healthy"`
	Message   string        `json:"message,omitempty"`
	Error     string        `json:"error,omitempty"`
}

func (c *cli) pluginsVerifyCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every enabled plugin: checksum, handshake, Describe, Configure, health, attachment",
		Long: `verify checks each enabled plugin's binary against its sha256, launches them
all as the config says and as skein run does (handshake, Describe, Configure,
Start), asks each its status, attaches every transport plugin to every
network plugin, and stops them. It exits 1 if any plugin fails. It refuses a data directory a
running node holds (its plugins hold their data), naming that node's pid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := c.load(cmd)
			if err != nil {
				return err
			}
			release, err := node.LockDataDir(cfg.Node.DataDir)
			if err != nil {
				return err // a node runs there: its plugins hold their data
			}
			defer release()
			logger := c.configLogger(cfg)
			// All together, as skein run starts them: then every transport
			// is attached to every network, as run does.
			host := pluginhost.New(logger)
			defer stopHost(cfg, logger, host)
			results := []verifyResult{}
			var networks, transports []*pluginhost.Plugin
			checkWarnings, checkErr := node.CheckPlugins(cmd.Context(), cfg)
			for _, w := range checkWarnings {
				logger.Warn("plugin config", "problem", w.String())
			}
			for _, name := range cfg.PluginNames() {
				p := cfg.Plugins[name]
				r := verifyResult{Name: name, ID: p.ID, Mode: string(p.Mode)}
				if msg := problemsFor(checkErr, name); msg != "" {
					r.Error = msg
				} else if res, pl, err := launchProbe(cmd.Context(), cfg, logger, host, name); err != nil {
					r.Error = err.Error()
				} else {
					r.Version, r.PID, r.StartTime = res.desc.Version, res.pid, res.took
					r.Healthy, r.Message = res.status.Healthy, res.status.Message
					if res.statErr != nil {
						r.Message = res.statErr.Error()
					}
					r.OK = r.Healthy
					if !r.OK && r.Error == "" {
						r.Error = "unhealthy: " + r.Message
					}
					if slices.Contains(res.desc.Kinds, sdk.KindNetwork) {
						networks = append(networks, pl)
					}
					if slices.Contains(res.desc.Kinds, sdk.KindTransport) {
						transports = append(transports, pl)
					}
				}
				results = append(results, r)
			}
			attachCtx, stopAttach := context.WithCancel(cmd.Context())
			defer stopAttach()
			for _, tp := range transports {
				for _, np := range networks {
					if err := pluginhost.KeepTransportAttached(attachCtx, np, tp); err != nil {
						i := slices.IndexFunc(results, func(r verifyResult) bool { return r.Name == tp.Name() })
						results[i].OK, results[i].Error = false, err.Error()
					}
				}
			}
			failed := 0
			for _, r := range results {
				if !r.OK {
					failed++
				}
			}
			if asJSON {
				if err := c.writeJSON(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.OK {
						fmt.Fprintf(c.stdout, "ok    %-10s %s %s  %s", r.Name, r.ID, r.Version, r.Mode)
						if r.PID != 0 {
							fmt.Fprintf(c.stdout, " pid %d", r.PID)
						}
						fmt.Fprintf(c.stdout, "  started in %s  healthy: %s\n", r.StartTime.Round(100*time.Microsecond), r.Message)
					} else {
						fmt.Fprintf(c.stdout, "FAIL  %-10s %s  %s\n", r.Name, r.ID, r.Error)
					}
				}
				if len(results) == 0 {
					fmt.Fprintln(c.stdout, "no plugins enabled")
				}
			}
			if failed > 0 {
				if !asJSON {
					fmt.Fprintf(c.stderr, "skein: %d of %d %s failed verification\n", failed, len(results), plural(len(results), "plugin", "plugins"))
				}
				return silentExit(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// problemsFor joins the problems of err (a *config.InvalidError) that
// concern the plugin name.
func problemsFor(err error, name string) string {
	inv, ok := err.(*config.InvalidError)
	if !ok || inv == nil {
		return ""
	}
	var msgs []string
	for _, p := range inv.Problems {
		if strings.HasPrefix(p.Key, "plugins."+name+".") {
			msgs = append(msgs, p.String())
		}
	}
	return strings.Join(msgs, "; ")
}

func (c *cli) pluginsStatusCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running node's plugins: state, process, restarts and what each reports",
		Long: `status asks the running node (its client API) for its plugins, in start
order: ID, version, mode, process id, state, restarts, the last crash, and
what the plugin's Status reports (healthy or not, a message, details).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Node.Plugins(ctx, &apiv1.PluginsRequest{})
				if err != nil {
					return rpcError("plugins status", err)
				}
				if f.json {
					out := []map[string]any{}
					for _, p := range r.GetPlugins() {
						out = append(out, map[string]any{"name": p.GetName(), "id": p.GetId(), "version": p.GetVersion(),
							"kinds": nonNil(p.GetKinds()), "mode": p.GetMode(), "pid": p.GetPid(), "state": p.GetState(),
							"restarts": p.GetRestarts(), "start_time_ns": p.GetStartTimeNanos(), "healthy": p.GetHealthy(),
							"message": p.GetMessage(), "details": nonNilMap(p.GetDetails()), "last_error": p.GetLastError()})
					}
					return c.writeJSON(out)
				}
				for _, p := range r.GetPlugins() {
					health := "healthy"
					if !p.GetHealthy() {
						health = "UNHEALTHY"
					}
					fmt.Fprintf(c.stdout, "%s: %s %s, %s", p.GetName(), p.GetId(), p.GetVersion(), p.GetMode())
					if p.GetPid() != 0 {
						fmt.Fprintf(c.stdout, " pid %d", p.GetPid())
					}
					fmt.Fprintf(c.stdout, ", %s, %s", p.GetState(), health)
					if p.GetMessage() != "" {
						fmt.Fprintf(c.stdout, ": %s", p.GetMessage())
					}
					fmt.Fprintln(c.stdout)
					if p.GetRestarts() > 0 {
						fmt.Fprintf(c.stdout, "  restarts  %d (last: %s)\n", p.GetRestarts(), p.GetLastError())
					} else if p.GetLastError() != "" {
						fmt.Fprintf(c.stdout, "  last error  %s\n", p.GetLastError())
					}
					d := p.GetDetails()
					tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
					for _, k := range slices.Sorted(maps.Keys(d)) {
						fmt.Fprintf(tw, "  %s\t%s\n", k, d[k])
					}
					if err := tw.Flush(); err != nil {
						return err
					}
				}
				if len(r.GetPlugins()) == 0 {
					fmt.Fprintln(c.stdout, "no plugins running")
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
