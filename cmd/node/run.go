package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/peersource"
)

func (c *cli) runCommand() *cobra.Command {
	var passphraseFile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node with its plugins until SIGINT or SIGTERM",
		Long: `run starts the node of a data directory skein init prepared: every enabled
plugin (out of process or linked in, as the config says), the messenger and
the client API. It logs which plugins started and how, and runs until
SIGINT or SIGTERM. It then
stops the plugins within node.shutdown_timeout, killing any still running,
and exits 0 on a clean stop. A second signal exits at once.

A keystore sealed by a passphrase (skein init --passphrase-file) is opened
with --passphrase-file FILE (its first line); keep that file private.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Before the config: without a file, a SKEIN_* variable meant
			// for the missing file's plugins would be reported instead.
			if file, err := c.resolveConfigFile(); err != nil {
				return err
			} else if file == "" {
				return notInitialised(c.flagDataDir(), "has no config ("+configFileName+")")
			}
			cfg, file, err := c.load(cmd)
			if err != nil {
				return err
			}
			if pluginOfKind(cfg, "network.") != "" {
				// The messenger needs the keys skein init writes.
				ks := filepath.Join(cfg.Node.DataDir, keystoreDirName)
				if _, err := os.Stat(ks); errors.Is(err, os.ErrNotExist) {
					return notInitialised(cfg.Node.DataDir, "has no keystore")
				}
			}
			// The same check Start makes, before anything is logged: a
			// node already running here is the one line to show.
			release, err := node.LockDataDir(cfg.Node.DataDir)
			if err != nil {
				return err
			}
			if err := release(); err != nil {
				return err
			}
			logger := c.configLogger(cfg)
			source := file
			if source == "" {
				source = "embedded defaults"
			}
			logger.Info("starting node", "config", source, "data_dir", cfg.Node.DataDir, "plugins", cfg.PluginNames())

			var passphrase []byte
			if passphraseFile != "" {
				if passphrase, err = readPassphrase(passphraseFile); err != nil {
					return err
				}
				defer clear(passphrase)
			}
			ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stopSignals()
			n, err := node.New(cfg, node.WithLogger(logger))
			if err != nil {
				return err
			}
			if err := n.Start(ctx); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted while starting: %w", err)
				}
				return err
			}
			sources := peersource.NewBook(0)
			recordBootstrap(cfg, sources)
			go func() {
				if err := n.RunDiscovery(ctx, node.DiscoveryNamespace, node.OnConnected(sources.Record)); err != nil {
					logger.Warn("discovery", "err", err)
				}
			}()
			var ms *messengerService
			if pluginOfKind(cfg, "network.") != "" {
				if ms, err = startMessenger(ctx, cfg, n, logger, passphrase, sources); err != nil {
					stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
					defer cancel()
					return errors.Join(err, n.Stop(stopCtx))
				}
			} else {
				logger.Warn("no network plugin enabled: running the plugins only, no messaging and no client API")
			}
			msrv, err := startMetrics(cfg, n, ms, sources, logger)
			if err != nil {
				stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
				defer cancel()
				if ms != nil {
					err = errors.Join(err, ms.Stop(stopCtx))
				}
				return errors.Join(err, n.Stop(stopCtx))
			}
			logger.Info("node running; stop with SIGINT or SIGTERM", "pid", os.Getpid(), "plugins", len(cfg.PluginNames()))
			<-ctx.Done()
			stopSignals() // a second signal now kills the process
			logger.Info("signal received; stopping", "deadline", cfg.Node.ShutdownTimeout)

			stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
			defer cancel()
			if msrv != nil {
				if err := msrv.Close(stopCtx); err != nil {
					logger.Warn("stopping the metrics endpoint", "err", err)
				}
			}
			if ms != nil {
				if err := ms.Stop(stopCtx); err != nil {
					logger.Error("stopping the messenger", "err", err)
				}
			}
			if err := n.Stop(stopCtx); err != nil {
				if errors.Is(stopCtx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("not stopped within node.shutdown_timeout %s: %w", cfg.Node.ShutdownTimeout, err)
				}
				return err
			}
			logger.Info("node stopped cleanly")
			return nil
		},
	}
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "open a keystore sealed by a passphrase with the first line of this file")
	return cmd
}

// notInitialised is the error of `skein run` on a data directory that
// `skein init` has not prepared.
func notInitialised(dir, what string) error {
	return fmt.Errorf("data directory %s %s: it was never initialised; run `skein init --data-dir %s` first (or give a config file with --config)", dir, what, dir)
}

// recordBootstrap notes the peers of every network plugin's bootstrap
// list (multiaddrs ending in /p2p/<id>) as found by bootstrap.
func recordBootstrap(cfg *config.Config, sources *peersource.Book) {
	for _, name := range cfg.PluginNames() {
		p := cfg.Plugins[name]
		if !strings.HasPrefix(p.ID, "network.") {
			continue
		}
		var list []string
		switch l := p.Config["bootstrap"].(type) {
		case []string:
			list = l
		case []any:
			for _, v := range l {
				if s, ok := v.(string); ok {
					list = append(list, s)
				}
			}
		}
		for _, s := range list {
			if i := strings.LastIndex(s, "/p2p/"); i >= 0 && !strings.Contains(s[i+len("/p2p/"):], "/") {
				sources.Record(s[i+len("/p2p/"):], peersource.Bootstrap)
			}
		}
	}
}
