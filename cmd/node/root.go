package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/pluginhost"
)

// configFileName is the config file `skein init` writes into a data
// directory, and the one commands read from it when no --config is given.
const configFileName = "skein.yaml"

// flagKeys maps the global flags to the config keys they override.
var flagKeys = map[string]string{
	"data-dir":   "node.data_dir",
	"log-level":  "node.log.level",
	"log-format": "node.log.format",
}

// cli holds what every command shares.
type cli struct {
	stdout, stderr io.Writer
	configFile     string
	dataDir        string
	logLevel       string
	logFormat      string
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	c := &cli{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "skein",
		Short: "Skein: a serverless, end-to-end-encrypted P2P messaging node",
		Long: `Skein is a peer-to-peer node for end-to-end-encrypted group messaging,
assembled from plugins (store, network, transports, discovery) by a YAML config.

Start with:
  skein demo                      a node with its plugins out of process, healthy
  skein init && skein run         a data directory, then the node

Configuration: embedded defaults < YAML file (--config, SKEIN_CONFIG, or
<data_dir>/skein.yaml) < SKEIN_* environment variables < flags.
See config.example.yaml and docs/configuration.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&c.configFile, "config", "c", "", "config file (default: $SKEIN_CONFIG, else <data_dir>/skein.yaml if it exists)")
	pf.StringVar(&c.dataDir, "data-dir", "", "data directory (node.data_dir; default ~/.skein)")
	pf.StringVar(&c.logLevel, "log-level", "", "log level: debug, info, warn, error (node.log.level; default info)")
	pf.StringVar(&c.logFormat, "log-format", "", "log format on stderr: text or json (node.log.format; default text)")

	root.AddCommand(
		c.versionCommand(),
		c.initCommand(),
		c.runCommand(),
		c.pluginsCommand(),
		c.configCommand(),
		c.pluginCommand(),
		c.demoCommand(),
		c.benchCommand(),
		c.simCommand(),
	)
	root.AddCommand(c.clientCommands()...)
	return root
}

// resolveConfigFile picks the config file: --config, else $SKEIN_CONFIG,
// else <data_dir>/skein.yaml when it exists (data_dir from --data-dir,
// $SKEIN_NODE__DATA_DIR or the default ~/.skein). "" means defaults only.
func (c *cli) resolveConfigFile() (string, error) {
	if c.configFile != "" {
		return c.configFile, nil
	}
	if f := os.Getenv(config.EnvConfigFile); f != "" {
		return f, nil
	}
	candidate := filepath.Join(c.flagDataDir(), configFileName)
	if _, err := os.Stat(candidate); err == nil {
		return candidate, nil
	}
	return "", nil
}

// flagDataDir is the data directory as the flag, the environment or the
// default name it, before any config file is read ("~" expanded when the
// home directory is known).
func (c *cli) flagDataDir() string {
	dir := c.dataDir
	if dir == "" {
		dir = os.Getenv("SKEIN_NODE__DATA_DIR")
	}
	if dir == "" {
		dir = "~/.skein"
	}
	if dir == "~" || strings.HasPrefix(dir, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, strings.TrimPrefix(dir, "~"))
		}
	}
	return dir
}

// load reads the configuration for cmd: file, environment and the global
// flags. It returns the file used ("" for defaults only).
func (c *cli) load(cmd *cobra.Command) (*config.Config, string, error) {
	file, err := c.resolveConfigFile()
	if err != nil {
		return nil, "", err
	}
	cfg, err := config.Load(
		config.WithFile(file),
		config.WithEnviron(os.Environ),
		config.WithFlags(cmd.Flags(), flagKeys),
		config.WithBuiltins(pluginhost.Registered()),
	)
	return cfg, file, err
}

// newLogger makes the stderr logger for level and format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if level == "" {
		level = "info"
	}
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// flagLogger is the logger from the flags alone, for commands that read
// no config.
func (c *cli) flagLogger() (*slog.Logger, error) {
	return newLogger(c.stderr, c.logLevel, c.logFormat)
}

// configLogger is the logger the config asks for.
func (c *cli) configLogger(cfg *config.Config) *slog.Logger {
	l, err := newLogger(c.stderr, cfg.Node.Log.Level, cfg.Node.Log.Format)
	if err != nil { // config.Load validated both; keep going with the default
		return slog.New(slog.NewTextHandler(c.stderr, nil))
	}
	return l
}

// writeJSON prints v as indented JSON on stdout.
func (c *cli) writeJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errSilent is returned when the command has already printed why it failed.
var errSilent = errors.New("failed")

// silentExit makes the process exit with code without printing more.
func silentExit(code int) error { return &exitError{code: code, err: errSilent} }
