package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/peersource"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/sdk"
)

// messengerService is what makes a running node a messenger: the
// messenger over the node's store and network plugins, and the client API
// serving it.
type messengerService struct {
	ks     *crypto.Keystore
	m      *messenger.Messenger
	srv    *api.Server
	served chan error
}

// startMessenger opens the keystore of the data directory (key-file mode,
// as `skein init` writes it), starts the messenger over the node's first
// enabled store and network plugins, and serves the client API on
// api.socket (default <data_dir>/skein.sock, mode 0600) and, when api.tcp is
// set, on TCP with the token in api.token_file. `skein run` calls it after
// the node started and stops it (Stop) before stopping the node.
func startMessenger(ctx context.Context, cfg *config.Config, n *node.Node, logger *slog.Logger, passphrase []byte, sources *peersource.Book) (*messengerService, error) {
	storeName, netName := pluginOfKind(cfg, "store."), pluginOfKind(cfg, "network.")
	if storeName == "" || netName == "" {
		return nil, fmt.Errorf("messenger: the config needs an enabled store plugin and an enabled network plugin (have store %q, network %q)", storeName, netName)
	}
	st, err := n.Store(storeName)
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	p, err := n.Plugin(netName)
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	network, err := p.Network()
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	var kopts []crypto.KeystoreOption
	if passphrase != nil {
		kopts = append(kopts, crypto.WithPassphrase(passphrase))
	}
	ks, err := crypto.OpenKeystore(filepath.Join(cfg.Node.DataDir, keystoreDirName), kopts...)
	if err != nil {
		switch {
		case errors.Is(err, crypto.ErrPassphraseRequired):
			return nil, fmt.Errorf("messenger: the keystore is sealed by a passphrase: start with --passphrase-file FILE: %w", err)
		case errors.Is(err, crypto.ErrWrongPassphrase):
			return nil, fmt.Errorf("messenger: --passphrase-file: %w", err)
		}
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return serveMessenger(ctx, cfg, ks, st, network, logger, sources, func(ctx context.Context) []*apiv1.PluginStatus {
		return pluginStatuses(n.Health(ctx))
	})
}

// pluginStatuses converts the node's health report for the client API.
func pluginStatuses(hs []node.PluginHealth) []*apiv1.PluginStatus {
	out := make([]*apiv1.PluginStatus, 0, len(hs))
	for _, h := range hs {
		kinds := make([]string, len(h.Kinds))
		for i, k := range h.Kinds {
			kinds[i] = string(k)
		}
		out = append(out, &apiv1.PluginStatus{
			Name: h.Name, Id: h.ID, Version: h.Version, Kinds: kinds, Mode: h.Mode,
			Pid: int32(h.PID), State: h.State, Restarts: int32(h.Restarts), StartTimeNanos: int64(h.StartTime),
			Healthy: h.Healthy, Message: h.Message, Details: h.Details, LastError: h.LastError,
		})
	}
	return out
}

// serveMessenger starts the messenger and the API over the given parts;
// sources (may be nil) records how peers were found and serves it; plugins
// (nil: none) reports the node's plugins.
func serveMessenger(ctx context.Context, cfg *config.Config, ks *crypto.Keystore, st sdk.Store, network sdk.Network, logger *slog.Logger, sources *peersource.Book, plugins func(context.Context) []*apiv1.PluginStatus) (*messengerService, error) {
	mcfg := messenger.Config{Keystore: ks, Store: st, Network: network, Logger: logger.With("component", "messenger")}
	if d := cfg.Replication.AntiEntropyInterval; d > 0 { // 0: a config built by hand; the replicator's default
		mcfg.Replication = append(mcfg.Replication, replication.WithAntiEntropyInterval(d))
	}
	mcfg.Replication = append(mcfg.Replication, replication.WithRendezvousInterval(cfg.Replication.RendezvousInterval),
		replication.WithMissingRetry(cfg.Replication.MissingRetry),
		replication.WithRendezvousConnected(func(id string) { sources.Record(id, peersource.DHT) }))
	if cfg.Replication.Serve {
		secret, err := replicationSecret(cfg.Replication.SecretFile)
		if err != nil {
			ks.Close()
			return nil, err
		}
		mcfg.ReplicationNode = &messenger.ReplicationNodeConfig{Secret: secret, MaxGroups: cfg.Replication.MaxGroups}
	}
	m, err := messenger.New(ctx, mcfg)
	if err != nil {
		ks.Close()
		return nil, err
	}
	acfg := api.Config{Socket: cfg.API.Socket, TCP: cfg.API.TCP, Logger: logger.With("component", "api"), PeerSources: sources, Plugins: plugins}
	if acfg.Socket == "" {
		acfg.Socket = api.SocketPath(cfg.Node.DataDir)
	}
	if cfg.API.TCP != "" {
		if cfg.API.TokenFile == "" {
			m.Close()
			ks.Close()
			return nil, fmt.Errorf("api.tcp %s: %w; set api.token_file", cfg.API.TCP, api.ErrTokenRequired)
		}
		tok, err := readToken(cfg.API.TokenFile)
		if err != nil {
			m.Close()
			ks.Close()
			return nil, fmt.Errorf("api.token_file: %w", err)
		}
		acfg.Token = tok
	}
	srv, err := api.Listen(m, acfg)
	if err != nil {
		m.Close()
		ks.Close()
		return nil, err
	}
	s := &messengerService{ks: ks, m: m, srv: srv, served: make(chan error, 1)}
	go func() { s.served <- srv.Serve() }()
	id := m.Identity()
	logger.Info("client API serving", "socket", srv.Socket(), "tcp", cfg.API.TCP,
		"account", id.AccountKey().Fingerprint(), "peer_id", network.PeerID(), "groups", len(m.Groups()))
	return s, nil
}

// Stop first pushes to connected peers what no other node holds yet
// (messenger.Flush, within half the time ctx leaves), then stops the API
// (open streams end at once), then the messenger (keys saved), then closes
// the keystore.
func (s *messengerService) Stop(ctx context.Context) error {
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		fctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
	}
	s.m.Flush(fctx)
	cancel()
	s.srv.Stop(ctx)
	err := <-s.served
	return errors.Join(err, s.m.Close(), s.ks.Close())
}

// pluginOfKind returns the first enabled plugin (by name) whose id starts
// with prefix ("store.", "network.").
func pluginOfKind(cfg *config.Config, prefix string) string {
	names := cfg.PluginNames()
	slices.Sort(names)
	for _, name := range names {
		if strings.HasPrefix(cfg.Plugins[name].ID, prefix) {
			return name
		}
	}
	return ""
}

// replicationSecret reads the registration secret of a replication node
// from path (64 hex digits), creating it (0600) with a random secret if it
// does not exist. A file readable by others is refused.
func replicationSecret(path string) ([32]byte, error) {
	var secret [32]byte
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		secret = crypto.RandomKey()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return secret, fmt.Errorf("replication.secret_file: %w", err)
		}
		_, werr := fmt.Fprintf(f, "%x\n", secret[:])
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return secret, fmt.Errorf("replication.secret_file %s: %w", path, err)
		}
		return secret, nil
	}
	if err != nil {
		return secret, fmt.Errorf("replication.secret_file: %w", err)
	}
	defer clear(b)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return secret, fmt.Errorf("replication.secret_file %s: mode %s lets others read the secret: chmod 600 it", path, fi.Mode().Perm())
	}
	n, err := hex.Decode(secret[:], bytes.TrimSpace(b))
	if err != nil || n != len(secret) || len(bytes.TrimSpace(b)) != 2*len(secret) {
		return [32]byte{}, fmt.Errorf("replication.secret_file %s: not 64 hex digits", path)
	}
	return secret, nil
}
