package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/sdk"
)

// demoNodeConfig is each demo node's config: a pebble store and the libp2p
// network, both out of process, the network on loopback only, with no DHT
// and no relay (nothing leaves this machine).
const demoNodeConfig = `# skein demo node
node:
  data_dir: .
plugins:
  store:
    id: store.pebble
    mode: process
    config:
      path: ${node.data_dir}/store
  network:
    id: network.ipfs
    mode: process
    config:
      data_dir: ${node.data_dir}/network
      listen: [/ip4/127.0.0.1/tcp/0]
      dht_mode: "off"
      relay: false
`

// demoNode is one node of the messaging demo: the node with its plugin
// processes, and the messenger over them.
type demoNode struct {
	name string
	dir  string
	cfg  *config.Config
	node *node.Node
	svc  *messengerService
	net  sdk.Network
}

func (c *cli) startDemoNode(ctx context.Context, name, dir string, level string) (*demoNode, error) {
	cfgPath := filepath.Join(dir, configFileName)
	cfg, err := config.Load(config.WithFile(cfgPath))
	if err != nil {
		return nil, fmt.Errorf("demo %s: config: %w", name, err)
	}
	cfg.Node.Log.Level = level
	logger, err := newLogger(c.stderr, level, c.logFormat)
	if err != nil {
		return nil, err
	}
	logger = logger.With("node", name)
	n, err := node.New(cfg, node.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, fmt.Errorf("demo %s: %w", name, err)
	}
	svc, err := startMessenger(ctx, cfg, n, logger, nil, nil)
	if err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
		defer cancel()
		return nil, errors.Join(err, n.Stop(stopCtx))
	}
	d := &demoNode{name: name, dir: dir, cfg: cfg, node: n, svc: svc, net: svc.m.Network()}
	return d, nil
}

func (d *demoNode) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Node.ShutdownTimeout)
	defer cancel()
	return errors.Join(d.svc.Stop(ctx), d.node.Stop(ctx))
}

func (d *demoNode) pids() string {
	var parts []string
	for _, h := range d.node.Health(context.Background()) {
		parts = append(parts, fmt.Sprintf("%s pid %d", h.ID, h.PID))
	}
	return strings.Join(parts, ", ")
}

// connect dials every other node (the demo has no discovery plugin).
func connectDemoNodes(ctx context.Context, nodes []*demoNode) error {
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.net.Connect(ctx, sdk.PeerInfo{ID: b.net.PeerID(), Addrs: b.net.Addrs()}); err != nil {
				return fmt.Errorf("demo: connect %s to %s: %w", a.name, b.name, err)
			}
		}
	}
	return nil
}

// messagingDemo runs three nodes on loopback, each with its plugins out of
// process: a group, an invitation, messages in all directions, one node
// away and back, and a summary of what was measured.
func (c *cli) messagingDemo(ctx context.Context, keep bool) (err error) {
	began := time.Now()
	out := &demoStep{w: c.stdout, of: 8}
	fmt.Fprintln(c.stdout, "skein demo: three nodes on loopback, each with its store and network plugins out of process")

	root, err := os.MkdirTemp("", "skein-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var nodes []*demoNode
	defer func() {
		for _, d := range nodes {
			if d != nil {
				err = errors.Join(err, d.stop())
			}
		}
		err = c.finishDemo(out, root, keep, began, "nodes stopped; removed %s", err)
	}()
	level := c.logLevel
	if level == "" {
		level = "error"
	}

	names := []string{"alice", "bob", "carol"}
	out.next("data directories under %s: keys and config for %s", root, strings.Join(names, ", "))
	for _, name := range names {
		dir := filepath.Join(root, name)
		if _, err := initDataDir(dir, nil, nil, nil); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(demoNodeConfig), 0o600); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}

	out.next("starting the nodes (each: store.pebble and network.ipfs as plugin processes)")
	for _, name := range names {
		t0 := time.Now()
		d, err := c.startDemoNode(ctx, name, filepath.Join(root, name), level)
		if err != nil {
			return err
		}
		nodes = append(nodes, d)
		out.detail("%-5s peer %s…  started in %s  (%s)", name, shortID(d.net.PeerID()), time.Since(t0).Round(time.Millisecond), d.pids())
	}
	if err := connectDemoNodes(ctx, nodes); err != nil {
		return err
	}
	alice, bob, carol := nodes[0], nodes[1], nodes[2]

	out.next("alice creates the group \"demo\"; bob and carol join with her invitation")
	info, err := alice.svc.m.CreateGroup(ctx, "demo")
	if err != nil {
		return fmt.Errorf("demo: create group: %w", err)
	}
	ref := info.ID.String()
	for _, d := range []*demoNode{bob, carol} {
		inv, err := alice.svc.m.Invite(ctx, ref)
		if err != nil {
			return fmt.Errorf("demo: invite %s: %w", d.name, err)
		}
		tok := inv.Token()
		out.detail("invitation for %s: %s… (%d characters)", d.name, tok[:min(len(tok), 32)], len(tok))
		joinCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		t0 := time.Now()
		_, err = d.svc.m.JoinGroup(joinCtx, tok, "demo")
		cancel()
		if err != nil {
			return fmt.Errorf("demo: %s joins: %w", d.name, err)
		}
		out.detail("%s joined in %s", d.name, time.Since(t0).Round(time.Millisecond))
	}
	if err := waitMembers(ctx, nodes, ref, 3); err != nil {
		return err
	}

	out.next("messages in all directions")
	subs := map[string]<-chan *group.Message{}
	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	for _, d := range nodes {
		ch, _, err := d.svc.m.Subscribe(subCtx, ref)
		if err != nil {
			return fmt.Errorf("demo: subscribe %s: %w", d.name, err)
		}
		subs[d.name] = ch
	}
	var latencies []time.Duration
	for _, from := range nodes {
		text := fmt.Sprintf("hello from %s", from.name)
		if _, err := from.svc.m.Send(ctx, ref, []byte(text)); err != nil {
			return fmt.Errorf("demo: %s sends: %w", from.name, err)
		}
		var seen []string
		for _, to := range nodes {
			if to == from {
				continue
			}
			d, err := awaitMessage(ctx, subs[to.name], text, 20*time.Second)
			if err != nil {
				return fmt.Errorf("demo: %s did not receive %q: %w", to.name, text, err)
			}
			latencies = append(latencies, d)
			seen = append(seen, fmt.Sprintf("%s in %s", to.name, d.Round(100*time.Microsecond)))
		}
		out.detail("%-5s -> %-20q seen by %s", from.name, text, strings.Join(seen, ", "))
	}
	if err := sameOrder(ctx, nodes, ref, 3); err != nil {
		return err
	}
	out.detail("all three nodes hold the 3 messages in the same order")

	const away = 20
	out.next("carol stops; alice and bob send %d messages while she is away", away)
	cancelSubs()
	if err := carol.stop(); err != nil {
		return fmt.Errorf("demo: stop carol: %w", err)
	}
	nodes = nodes[:2]
	for i := range away {
		from := nodes[i%2]
		if _, err := from.svc.m.Send(ctx, ref, []byte(fmt.Sprintf("while carol is away %02d (from %s)", i, from.name))); err != nil {
			return fmt.Errorf("demo: %s sends: %w", from.name, err)
		}
	}

	out.next("carol restarts and catches up")
	t0 := time.Now()
	carol, err = c.startDemoNode(ctx, "carol", filepath.Join(root, "carol"), level)
	if err != nil {
		return err
	}
	nodes = append(nodes, carol)
	if err := connectDemoNodes(ctx, nodes); err != nil {
		return err
	}
	want := 3 + away
	if err := waitCount(ctx, carol, ref, want, 60*time.Second); err != nil {
		return err
	}
	catchUp := time.Since(t0)
	if err := sameOrder(ctx, nodes, ref, want); err != nil {
		return err
	}
	out.detail("carol holds all %d messages %s after her restart, in the same order as alice and bob", want, catchUp.Round(time.Millisecond))

	slices.Sort(latencies)
	out.next("summary: message latency p50 %s, max %s (send to delivery on another node); catch-up of %d messages %s (restart included)",
		latencies[len(latencies)/2].Round(100*time.Microsecond), latencies[len(latencies)-1].Round(100*time.Microsecond),
		away, catchUp.Round(time.Millisecond))
	return nil
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[len(id)-12:]
	}
	return id
}

// awaitMessage waits for text on ch and returns how long since it was sent
// (by the sender's clock: the demo's nodes share one).
func awaitMessage(ctx context.Context, ch <-chan *group.Message, text string, limit time.Duration) (time.Duration, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return 0, errors.New("subscription ended")
			}
			if string(m.Body) == text {
				return time.Since(m.SentAt), nil
			}
		case <-timer.C:
			return 0, fmt.Errorf("not delivered within %s", limit)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// waitCondition polls cond until it holds or limit passes: the demo has no
// event for "the replica converged", only state to look at.
func waitCondition(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func waitMembers(ctx context.Context, nodes []*demoNode, ref string, want int) error {
	for _, d := range nodes {
		err := waitCondition(ctx, 20*time.Second, func() (bool, error) {
			ms, err := d.svc.m.Members(ref)
			if err != nil {
				return false, err
			}
			if len(ms) < want {
				return false, fmt.Errorf("%s sees %d members, want %d", d.name, len(ms), want)
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("demo: members: %w", err)
		}
	}
	return nil
}

func waitCount(ctx context.Context, d *demoNode, ref string, want int, limit time.Duration) error {
	err := waitCondition(ctx, limit, func() (bool, error) {
		ms, err := d.svc.m.Messages(ctx, ref, messenger.ListOptions{})
		if err != nil {
			return false, err
		}
		if len(ms) < want {
			return false, fmt.Errorf("%s holds %d messages, want %d", d.name, len(ms), want)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// sameOrder waits until every node holds want messages, then checks they
// hold them in one order.
func sameOrder(ctx context.Context, nodes []*demoNode, ref string, want int) error {
	var first []string
	for i, d := range nodes {
		if err := waitCount(ctx, d, ref, want, 30*time.Second); err != nil {
			return err
		}
		ms, err := d.svc.m.Messages(ctx, ref, messenger.ListOptions{})
		if err != nil {
			return fmt.Errorf("demo: messages on %s: %w", d.name, err)
		}
		var order []string
		for _, m := range ms {
			order = append(order, m.CID.String())
		}
		if i == 0 {
			first = order
			continue
		}
		if !slices.Equal(first, order) {
			return fmt.Errorf("demo: %s orders the messages differently from %s", d.name, nodes[0].name)
		}
	}
	return nil
}
