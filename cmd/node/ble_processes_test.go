package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
)

// TestBLEProcessesOnSimHub: two real `skein run` processes made by `skein
// init --preset ble`, BLE their only transport (no IP address listened
// on), with the sim driver on one medium shared through a sim_hub socket
// (every plugin out of process, the preset's default). They find each
// other over the radio, one makes a group and the other joins with the
// CLI, messages go both ways; then B stops, A sends while B is away, and
// B catches up when it runs again.
//
// A message sent before its sender has applied the join is not readable
// by the newcomer (docs/protocol.md, "Sending chains, shared lazily"): the
// test waits until A lists B as a member before A sends, as a user
// should (`skein group members`).
func TestBLEProcessesOnSimHub(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes and their plugin processes")
	}
	root := t.TempDir()
	hub := filepath.Join(root, "hub.sock")
	env := testEnv(t)
	dirs := map[string]string{}
	for _, n := range []string{"a", "b"} {
		dir := filepath.Join(root, n)
		if r := skein(t, env, "init", "--preset", "ble", "--data-dir", dir); r.code != 0 {
			t.Fatalf("init %s: %s", n, r.stderr)
		}
		cfgPath := filepath.Join(dir, configFileName)
		cfg, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		sim := fmt.Sprintf("driver: sim\n      sim_hub: %s\n      sim_medium: procs\n      sim_device: dev-%s\n      report_interval: 1s\n      tie_break_wait: 2s", hub, n)
		if !strings.Contains(string(cfg), "driver: bluez") {
			t.Fatalf("the ble preset has no 'driver: bluez':\n%s", cfg)
		}
		if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), "driver: bluez", sim, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		dirs[n] = dir
	}
	// A first: its BLE plugin serves the hub, so the medium outlives B's
	// restart.
	// No IP address: the preset's listen: [] (stated again so the test
	// helper does not add loopback TCP).
	runEnv := append(slices.Clone(env), listenEnv+"=[]")
	a := startKill9Node(t, runEnv, dirs["a"])
	b := startKill9Node(t, runEnv, dirs["b"])
	ctx := t.Context()
	ca, cb := dialNode(t, dirs["a"]), dialNode(t, dirs["b"])

	peerB := peerID(t, cb)
	waitFor(t, 60*time.Second, "A connected to B over BLE", func() (bool, error) {
		ps, err := ca.Peers.List(ctx, &apiv1.ListPeersRequest{})
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(ps.GetPeers(), func(p *apiv1.Peer) bool {
			return p.GetId() == peerB && slices.ContainsFunc(p.GetAddrs(), func(a string) bool { return strings.Contains(a, "/x-ble/") })
		}), nil
	})

	if r := skein(t, env, "group", "create", "--data-dir", dirs["a"], "offline"); r.code != 0 {
		t.Fatalf("group create: %s", r.stderr)
	}
	inv := skein(t, env, "group", "invite", "--data-dir", dirs["a"], "offline")
	if inv.code != 0 {
		t.Fatalf("group invite: %s", inv.stderr)
	}
	if r := skein(t, env, "group", "join", "--data-dir", dirs["b"], "--name", "offline", "--timeout", "60s", strings.TrimSpace(inv.stdout)); r.code != 0 {
		t.Fatalf("group join: %s", r.stderr)
	}
	// The join returns once B has joined; A reads it from the radio a
	// moment later. Before that, what A sends is closed to B.
	waitFor(t, 60*time.Second, "A lists B as a member", func() (bool, error) {
		ms, err := ca.Groups.Members(ctx, &apiv1.MembersRequest{Group: "offline"})
		return len(ms.GetMembers()) == 2, err
	})

	if r := skein(t, env, "send", "--data-dir", dirs["a"], "offline", "a: right after the join"); r.code != 0 {
		t.Fatalf("send a: %s", r.stderr)
	}
	if r := skein(t, env, "send", "--data-dir", dirs["b"], "offline", "b: hello over the radio"); r.code != 0 {
		t.Fatalf("send b: %s", r.stderr)
	}
	holdsAll(t, ca, "A", "a: right after the join", "b: hello over the radio")
	holdsAll(t, cb, "B", "a: right after the join", "b: hello over the radio")

	// B goes away; A goes on; B comes back and catches up over BLE.
	_ = cb.Close()
	b.stop(t)
	var away []string
	for i := range 5 {
		body := fmt.Sprintf("a: while b was away %d", i)
		if _, err := ca.Messages.Send(ctx, &apiv1.SendRequest{Group: "offline", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		away = append(away, body)
	}
	startKill9Node(t, runEnv, dirs["b"])
	cb = dialNode(t, dirs["b"])
	holdsAll(t, cb, "B after its restart", away...)
	if _, err := cb.Messages.Send(ctx, &apiv1.SendRequest{Group: "offline", Body: []byte("b: back")}); err != nil {
		t.Fatal(err)
	}
	holdsAll(t, ca, "A", "b: back")
	a.stop(t)
}

func dialNode(t *testing.T, dir string) *client.Client {
	t.Helper()
	c, err := client.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func peerID(t *testing.T, c *client.Client) string {
	t.Helper()
	acc, err := c.Account.Get(t.Context(), &apiv1.GetAccountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return acc.GetPeerId()
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := waitCondition(t.Context(), limit, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// holdsAll waits until the node holds every body in the group "offline".
func holdsAll(t *testing.T, c *client.Client, who string, bodies ...string) {
	t.Helper()
	waitFor(t, 60*time.Second, who+" holds "+strings.Join(bodies, ", "), func() (bool, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		list, err := c.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "offline"})
		if err != nil {
			return false, err
		}
		have := map[string]bool{}
		for _, m := range list.GetMessages() {
			have[string(m.GetBody())] = true
		}
		for _, b := range bodies {
			if !have[b] {
				return false, fmt.Errorf("lacks %q (holds %d)", b, len(have))
			}
		}
		return true, nil
	})
}
