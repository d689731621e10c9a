package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/plugins/ble"
	"github.com/skein-p2p/skein/sdk"
)

// Offline scenarios: whole nodes (store, network, BLE plugin linked in)
// in this process, whose only link is the simulated BLE radio (driver
// sim) on a medium of the test's own. Nodes find each other by the BLE
// plugin's discovery (node.RunDiscovery), as with the ble preset.

var bleMediumSeq atomic.Int64

// bleStops holds each started node's stop, run once (a test may stop a
// node before its cleanup does).
var bleStops sync.Map // *demoNode -> func() error

func stopBLENode(d *demoNode) error {
	if f, ok := bleStops.Load(d); ok {
		return f.(func() error)()
	}
	return d.stop()
}

type bleSpot struct {
	name   string
	x      float64
	range_ float64
	tcp    bool // also listen on loopback TCP (a LAN)
}

func bleScenarioConfig(medium string, s bleSpot, pluginKeys func(bleSpot) string) string {
	listen := "[]"
	if s.tcp {
		listen = "[/ip4/127.0.0.1/tcp/0]"
	}
	return fmt.Sprintf(`node:
  data_dir: .
replication:
  rendezvous_interval: 0s
plugins:
  store:
    id: store.memory
    mode: linked
  network:
    id: network.ipfs
    mode: linked
    config:
      listen: %s
      dht_mode: "off"
      relay: false
      nat_service: false
      transports:
        x-ble: [auto]
  ble:
    id: transport.ble
    mode: linked
    config:
      driver: sim
      sim_medium: %s
%s`, listen, medium, pluginKeys(s))
}

// fastDiscovery reports peers every second and breaks ties after 3 s.
func fastDiscovery(s bleSpot) string {
	return fmt.Sprintf("      sim_device: %s\n      sim_position: [%v, 0]\n      sim_range: %v\n      report_interval: 1s\n      tie_break_wait: 3s\n",
		s.name, s.x, s.range_)
}

// startBLENodes starts one node per spot and runs discovery on each.
func startBLENodes(t *testing.T, spots ...bleSpot) (string, []*demoNode) {
	t.Helper()
	return startBLENodesWith(t, fastDiscovery, spots...)
}

func startBLENodesWith(t *testing.T, pluginKeys func(bleSpot) string, spots ...bleSpot) (string, []*demoNode) {
	t.Helper()
	medium := fmt.Sprintf("scenario-%d-%d", os.Getpid(), bleMediumSeq.Add(1))
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	if testing.Verbose() {
		c.stderr = os.Stderr
	}
	root := t.TempDir()
	var nodes []*demoNode
	for _, s := range spots {
		dir := filepath.Join(root, s.name)
		if _, err := initDataDir(dir, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(bleScenarioConfig(medium, s, pluginKeys)), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := c.startDemoNode(t.Context(), s.name, dir, "warn")
		if err != nil {
			t.Fatalf("start %s: %v", s.name, err)
		}
		stop := sync.OnceValue(d.stop)
		bleStops.Store(d, stop)
		t.Cleanup(func() { _ = stop() })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = d.node.RunDiscovery(ctx, node.DiscoveryNamespace)
		}()
		t.Cleanup(func() { cancel(); <-done })
		nodes = append(nodes, d)
	}
	return medium, nodes
}

func connectedTo(d *demoNode, other *demoNode) bool {
	peers, err := d.net.Peers(context.Background())
	if err != nil {
		return false
	}
	return slices.ContainsFunc(peers, func(p sdk.PeerInfo) bool { return p.ID == other.net.PeerID() })
}

func waitConnected(t *testing.T, a, b *demoNode) {
	t.Helper()
	if err := waitCondition(t.Context(), 60*time.Second, func() (bool, error) { return connectedTo(a, b), nil }); err != nil {
		t.Fatalf("%s and %s never connected over BLE: %v", a.name, b.name, err)
	}
}

// joinAll makes a group on owner and has every other node join it, in
// order.
func joinAll(t *testing.T, owner *demoNode, others ...*demoNode) string {
	t.Helper()
	ctx := t.Context()
	info, err := owner.svc.m.CreateGroup(ctx, "offline")
	if err != nil {
		t.Fatal(err)
	}
	ref := info.ID.String()
	for _, d := range others {
		inv, err := owner.svc.m.Invite(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err = d.svc.m.JoinGroup(jctx, inv.Token(), "offline")
		cancel()
		if err != nil {
			t.Fatalf("%s joins: %v", d.name, err)
		}
	}
	if err := waitMembers(ctx, append([]*demoNode{owner}, others...), ref, 1+len(others)); err != nil {
		t.Fatal(err)
	}
	return ref
}

func send(t *testing.T, d *demoNode, ref, text string) {
	t.Helper()
	if _, err := d.svc.m.Send(t.Context(), ref, []byte(text)); err != nil {
		t.Fatalf("%s sends: %v", d.name, err)
	}
}

func holds(t *testing.T, d *demoNode, ref string, want ...string) {
	t.Helper()
	err := waitCondition(t.Context(), 60*time.Second, func() (bool, error) {
		ms, err := d.svc.m.Messages(t.Context(), ref, messenger.ListOptions{})
		if err != nil {
			return false, err
		}
		have := map[string]bool{}
		for _, m := range ms {
			have[string(m.Body)] = true
		}
		for _, w := range want {
			if !have[w] {
				return false, fmt.Errorf("%s lacks %q (holds %d messages)", d.name, w, len(ms))
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBLEOfflineTwoNodes: two nodes with BLE as their only transport find
// each other, make a group and exchange messages both ways; one goes out
// of range while the other writes, comes back and catches up.
func TestBLEOfflineTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("whole nodes over a simulated radio")
	}
	medium, nodes := startBLENodes(t, bleSpot{name: "ada", x: 0, range_: 50}, bleSpot{name: "bob", x: 10, range_: 50})
	ada, bob := nodes[0], nodes[1]
	for _, d := range nodes {
		if addrs := d.net.Addrs(); len(addrs) != 1 || !strings.HasPrefix(addrs[0], "/"+ble.Protocol+"/") {
			t.Fatalf("%s listens on %v, want one /x-ble address only", d.name, addrs)
		}
	}
	waitConnected(t, ada, bob)
	ref := joinAll(t, ada, bob)
	send(t, ada, ref, "hello from ada")
	send(t, bob, ref, "hello from bob")
	holds(t, bob, ref, "hello from ada")
	holds(t, ada, ref, "hello from bob")

	// bob walks away: the link breaks; ada writes meanwhile.
	if err := ble.SimAir(medium).Move("bob", 1000, 0); err != nil {
		t.Fatal(err)
	}
	if err := waitCondition(t.Context(), 60*time.Second, func() (bool, error) { return !connectedTo(ada, bob), nil }); err != nil {
		t.Fatalf("still connected out of range: %v", err)
	}
	var away []string
	for i := range 20 {
		away = append(away, fmt.Sprintf("while bob was away %02d", i))
		send(t, ada, ref, away[i])
	}
	if err := ble.SimAir(medium).Move("bob", 10, 0); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, ada, bob)
	holds(t, bob, ref, away...)
	if err := sameOrder(t.Context(), nodes, ref, 22); err != nil {
		t.Fatal(err)
	}
}

// TestBLEChainConverges: A and C are out of each other's range, B hears
// both; the group converges through B, a member.
func TestBLEChainConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("whole nodes over a simulated radio")
	}
	_, nodes := startBLENodes(t,
		bleSpot{name: "ann", x: 0, range_: 12}, bleSpot{name: "ben", x: 10, range_: 12}, bleSpot{name: "cat", x: 20, range_: 12})
	ann, ben, cat := nodes[0], nodes[1], nodes[2]
	waitConnected(t, ann, ben)
	waitConnected(t, ben, cat)
	ref := joinAll(t, ann, ben, cat)
	if connectedTo(ann, cat) {
		t.Fatal("ann and cat connected out of range")
	}
	send(t, ann, ref, "from ann")
	send(t, cat, ref, "from cat")
	for _, d := range nodes {
		holds(t, d, ref, "from ann", "from cat")
	}
	if err := sameOrder(t.Context(), nodes, ref, 2); err != nil {
		t.Fatal(err)
	}
}

// TestBLEBridgesLAN: B has BLE to A and a LAN (TCP) link to C, which has
// no radio on A's medium: B bridges the group between them as a member.
func TestBLEBridgesLAN(t *testing.T) {
	if testing.Short() {
		t.Skip("whole nodes over a simulated radio")
	}
	_, nodes := startBLENodes(t,
		bleSpot{name: "amy", x: 0, range_: 12}, bleSpot{name: "bo", x: 10, range_: 12, tcp: true},
		bleSpot{name: "cy", x: 500, range_: 12, tcp: true})
	amy, bo, cy := nodes[0], nodes[1], nodes[2]
	waitConnected(t, amy, bo)
	var tcp []string
	for _, a := range bo.net.Addrs() {
		if strings.HasPrefix(a, "/ip4/") {
			tcp = append(tcp, a)
		}
	}
	if err := cy.net.Connect(t.Context(), sdk.PeerInfo{ID: bo.net.PeerID(), Addrs: tcp}); err != nil {
		t.Fatalf("cy connects to bo over the LAN: %v", err)
	}
	ref := joinAll(t, bo, amy, cy)
	if connectedTo(amy, cy) {
		t.Fatal("amy and cy connected: no path but through bo")
	}
	send(t, amy, ref, "from amy over ble")
	send(t, cy, ref, "from cy over the lan")
	for _, d := range nodes {
		holds(t, d, ref, "from amy over ble", "from cy over the lan")
	}
}
