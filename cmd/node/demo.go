package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/sdk"
)

// demoKeys is how many keys the demo writes through the store plugin.
const demoKeys = 1000

// demoConfig is the demo node's config file: the defaults, with the store
// plugin restarted quickly so the demo does not wait long.
const demoConfig = `# skein demo: a throwaway node in a temporary directory.
node:
  data_dir: .
plugins:
  store:
    id: store.pebble
    mode: process
    restart:
      initial_backoff: 50ms
    config:
      path: ${node.data_dir}/store
`

func (c *cli) demoCommand() *cobra.Command {
	var keep, pluginsOnly bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run three nodes on loopback and show them messaging (or, with --plugins, one node's supervised plugins)",
		Long: `demo creates a temporary directory and runs three nodes (alice, bob,
carol) on loopback, each with its store (store.pebble) and network
(network.ipfs) plugins out of process: alice creates a group and invites the
others, everyone sends, carol stops while alice and bob send, then restarts
and catches up. It prints message latency and catch-up time, stops the
nodes and removes the directory. Nothing leaves this machine: the network
plugins listen on 127.0.0.1 with no DHT, relay or bootstrap peers.

With --plugins it instead shows one node's store plugin at work: healthy
(pid, id, version, start time), operations through the plugin process,
killed with SIGKILL and restarted by the supervisor with its data intact.

It reads no config file and no SKEIN_* variables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pluginsOnly {
				return c.demo(cmd.Context(), keep)
			}
			return c.messagingDemo(cmd.Context(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data directory")
	cmd.Flags().BoolVar(&pluginsOnly, "plugins", false, "show one node's plugins supervised (kill and restart) instead of messaging")
	return cmd
}

// demoStep prints numbered progress lines.
type demoStep struct {
	w     io.Writer
	n, of int
}

func (s *demoStep) next(format string, args ...any) {
	s.n++
	fmt.Fprintf(s.w, "[%d/%d] %s\n", s.n, s.of, fmt.Sprintf(format, args...))
}

func (s *demoStep) detail(format string, args ...any) {
	fmt.Fprintf(s.w, "      %s\n", fmt.Sprintf(format, args...))
}

func (c *cli) demo(ctx context.Context, keep bool) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	began := time.Now()
	out := &demoStep{w: c.stdout, of: 6}
	fmt.Fprintln(c.stdout, "skein demo: a node with its store plugin out of process")

	dir, err := os.MkdirTemp("", "skein-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() { err = c.finishDemo(out, dir, keep, began, "removed %s", err) }()
	cfgPath := filepath.Join(dir, configFileName)
	if err := os.WriteFile(cfgPath, []byte(demoConfig), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	out.next("data directory %s (temporary)", dir)

	// Quiet by default: the progress lines tell the story. --log-level
	// debug shows the host and plugin logs too.
	level := c.logLevel
	if level == "" {
		level = "warn"
	}
	logger, err := newLogger(c.stderr, level, c.logFormat)
	if err != nil {
		return err
	}
	cfg, err := config.Load(config.WithFile(cfgPath))
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	// Plugin processes log at the node's level.
	cfg.Node.Log.Level = level
	n, err := node.New(cfg, node.WithLogger(logger))
	if err != nil {
		return err
	}
	out.next("starting the node (per plugin: sha256 check, launch, handshake, Describe, Configure, Start)")
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
		defer cancel()
		_ = n.Stop(stopCtx)
	}()
	healthCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	health := n.Health(healthCtx)
	cancel()
	for _, h := range health {
		state := "healthy"
		if !h.Healthy {
			state = "UNHEALTHY"
		}
		out.detail("%-6s %s %s  %s pid %d  started in %s  %s: %s",
			h.Name, h.ID, h.Version, h.Mode, h.PID, h.StartTime.Round(100*time.Microsecond), state, h.Message)
		if !h.Healthy {
			return fmt.Errorf("demo: plugin %s is not healthy: %s", h.Name, h.Message)
		}
	}

	st, err := n.Store("store")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	out.next("store operations through the plugin process")
	if err := demoStoreOps(ctx, out, st); err != nil {
		return err
	}

	p, err := n.Plugin("store")
	if err != nil {
		return err
	}
	oldPID := p.PID()
	if oldPID == 0 {
		return errors.New("demo: the store plugin has no process to kill")
	}
	out.next("killing the store plugin process (pid %d) with SIGKILL", oldPID)
	out.detail("(the supervisor logs the crash on stderr; a read issued now waits for the restart)")
	killed := time.Now()
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("demo: kill plugin: %w", err)
	}
	// A read issued now waits for the supervisor's restart and then succeeds:
	// reads are idempotent, so the host retries them.
	readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := readAfterRestart(readCtx, st, p.PID, oldPID)
	if err != nil {
		return fmt.Errorf("demo: read after the kill: %w", err)
	}
	out.detail("restarted by the supervisor: pid %d, %s after the kill (restarts: %d)",
		p.PID(), time.Since(killed).Round(time.Millisecond), p.Restarts())
	out.detail("get demo/0001 -> %q (the synced batch survived kill -9)", v)

	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
	defer cancelStop()
	t0 := time.Now()
	if err := n.Stop(stopCtx); err != nil {
		return err
	}
	out.next("node stopped cleanly in %s", time.Since(t0).Round(time.Millisecond))
	return nil
}

// readAfterRestart reads demo/0001 once the plugin has a new process.
// The read itself blocks through the restart; the loop only guards against
// reading the old process before the crash was noticed.
func readAfterRestart(ctx context.Context, st sdk.Store, pid func() int, oldPID int) ([]byte, error) {
	for {
		v, err := st.Get(ctx, []byte("demo/0001"))
		if err == nil && pid() != oldPID && pid() != 0 {
			return v, nil
		}
		if ctx.Err() != nil {
			if err == nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("plugin not restarted: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func demoStoreOps(ctx context.Context, out *demoStep, st sdk.Store) error {
	ops := make([]sdk.Op, demoKeys)
	for i := range ops {
		ops[i] = sdk.Op{Key: fmt.Appendf(nil, "demo/%04d", i), Value: fmt.Appendf(nil, "value %d", i)}
	}
	t0 := time.Now()
	if err := st.Batch(ctx, ops, true); err != nil {
		return fmt.Errorf("demo: batch: %w", err)
	}
	out.detail("%-40s %s", fmt.Sprintf("batch of %d puts, synced", demoKeys), time.Since(t0).Round(10*time.Microsecond))

	t0 = time.Now()
	v, err := st.Get(ctx, []byte("demo/0042"))
	if err != nil {
		return fmt.Errorf("demo: get: %w", err)
	}
	if want := "value 42"; string(v) != want {
		return fmt.Errorf("demo: get demo/0042 = %q, want %q", v, want)
	}
	out.detail("%-40s %s", fmt.Sprintf("get demo/0042 -> %q", v), time.Since(t0).Round(10*time.Microsecond))

	t0 = time.Now()
	count := 0
	var last []byte
	for kv, err := range st.Query(ctx, sdk.Query{Prefix: []byte("demo/"), KeysOnly: true}) {
		if err != nil {
			return fmt.Errorf("demo: query: %w", err)
		}
		if last != nil && bytes.Compare(kv.Key, last) <= 0 {
			return fmt.Errorf("demo: query out of order: %q after %q", kv.Key, last)
		}
		last = kv.Key
		count++
	}
	if count != demoKeys {
		return fmt.Errorf("demo: query found %d keys, want %d", count, demoKeys)
	}
	out.detail("%-40s %s", fmt.Sprintf("prefix query demo/ -> %d keys in order", count), time.Since(t0).Round(10*time.Microsecond))

	if err := st.Put(ctx, []byte("demo/extra"), []byte("x")); err != nil {
		return fmt.Errorf("demo: put: %w", err)
	}
	if err := st.Delete(ctx, []byte("demo/0042")); err != nil {
		return fmt.Errorf("demo: delete: %w", err)
	}
	has, err := st.Has(ctx, []byte("demo/0042"))
	if err != nil {
		return fmt.Errorf("demo: has: %w", err)
	}
	if has {
		return errors.New("demo: demo/0042 still present after delete")
	}
	if _, err := st.Get(ctx, []byte("demo/0042")); !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("demo: get after delete: %v, want %v", err, sdk.ErrNotFound)
	}
	if err := st.Sync(ctx); err != nil {
		return fmt.Errorf("demo: sync: %w", err)
	}
	out.detail("put, delete demo/0042, has -> false, get -> %s, sync", strings.TrimSpace(sdk.ErrNotFound.Error()))
	return nil
}

// finishDemo removes the demo's directory (or keeps it, with --keep),
// prints the last step and, when all went well, the total time. It
// returns err joined with a failure to remove.
func (c *cli) finishDemo(out *demoStep, dir string, keep bool, began time.Time, removedFmt string, err error) error {
	if keep {
		out.next("kept %s", dir)
	} else if rerr := os.RemoveAll(dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("demo: remove %s: %w", dir, rerr))
	} else {
		out.next(removedFmt, dir)
	}
	if err == nil {
		fmt.Fprintf(c.stdout, "demo ok in %s\n", time.Since(began).Round(10*time.Millisecond))
	}
	return err
}
