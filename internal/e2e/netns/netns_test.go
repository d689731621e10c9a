//go:build linux

package netns

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// groupName is the group's local name on every node of a cluster.
const groupName = "e2e"

// cluster is three nodes, a, b and c, each in its own namespace, members of
// one group.
type cluster struct {
	topo    *topology
	nodes   []*node
	a, b, c *node
}

// newCluster starts three nodes in three namespaces (b bootstraps to a, c
// to a and b), waits until each is connected to the other two, then a
// creates the group and invites b and c, who join.
func newCluster(tb testing.TB) *cluster {
	tb.Helper()
	topo := newTopology(tb, "a", "b", "c")
	c := &cluster{topo: topo}
	c.a = startNode(tb, topo.hosts["a"])
	c.b = startNode(tb, topo.hosts["b"], c.a.dialAddr)
	c.c = startNode(tb, topo.hosts["c"], c.a.dialAddr, c.b.dialAddr)
	c.nodes = []*node{c.a, c.b, c.c}
	for _, n := range c.nodes {
		waitFor(tb, n.name+" connected to the other two", 30*time.Second, func() error {
			ids := n.peerIDs(tb)
			for _, o := range c.nodes {
				if o != n && !slices.Contains(ids, o.peerID) {
					return fmt.Errorf("%s's peers %v lack %s (%s)", n.name, ids, o.name, o.peerID)
				}
			}
			return nil
		})
	}

	var g struct {
		ID string `json:"id"`
	}
	c.a.cliJSON(tb, &g, "group", "create", groupName, "--json")
	if g.ID == "" {
		tb.Fatal("group create --json printed no group id")
	}
	for _, n := range []*node{c.b, c.c} {
		var inv struct {
			Token string `json:"token"`
		}
		c.a.cliJSON(tb, &inv, "group", "invite", groupName, "--json")
		var joined struct {
			ID string `json:"id"`
		}
		start := time.Now()
		n.cliJSON(tb, &joined, "group", "join", inv.Token, "--name", groupName, "--timeout", "60s", "--json")
		if joined.ID != g.ID {
			tb.Fatalf("%s joined group %s, want %s", n.name, joined.ID, g.ID)
		}
		tb.Logf("%s joined across namespaces in %s", n.name, time.Since(start).Round(time.Millisecond))
	}
	for _, n := range c.nodes {
		waitFor(tb, n.name+" sees three members", 30*time.Second, func() error {
			var ms []map[string]any
			n.cliJSON(tb, &ms, "group", "members", groupName, "--json")
			if len(ms) != 3 {
				return fmt.Errorf("%s sees %d members", n.name, len(ms))
			}
			return nil
		})
	}
	return c
}

// sendAll sends bodies[n] from each node n, each node's messages in order,
// the nodes at the same time. It fails the test on the first error.
func sendAll(tb testing.TB, bodies map[*node][]string) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(bodies))
	for n, bs := range bodies {
		wg.Go(func() {
			for _, b := range bs {
				if err := n.send(groupName, b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// bodies returns the bodies of ms, in order.
func bodies(ms []message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body
	}
	return out
}

// cids returns the CIDs of ms, in order.
func cids(ms []message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.CID
	}
	return out
}

// holds reports (as an error) whether n holds exactly the bodies in want,
// in any order.
func holds(ms []message, want []string) error {
	got := slices.Sorted(slices.Values(bodies(ms)))
	w := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, w) {
		return fmt.Errorf("holds %d messages %q, want %d %q", len(got), got, len(w), w)
	}
	return nil
}

// waitConverged waits until every node holds exactly want, in the same
// order, and returns that order and how long it took.
func waitConverged(tb testing.TB, nodes []*node, want []string, limit time.Duration) ([]message, time.Duration) {
	tb.Helper()
	var order []message
	took := waitFor(tb, "every node holds the same messages in the same order", limit, func() error {
		var first []message
		for i, n := range nodes {
			ms := n.messages(tb, groupName)
			if err := holds(ms, want); err != nil {
				return fmt.Errorf("%s %w", n.name, err)
			}
			if i == 0 {
				first = ms
				continue
			}
			if !slices.Equal(cids(first), cids(ms)) {
				return fmt.Errorf("%s orders the messages %q, %s %q", nodes[0].name, bodies(first), n.name, bodies(ms))
			}
		}
		order = first
		return nil
	})
	return order, took
}

// checkSenderOrder fails the test unless each node's messages appear in
// order in the group's order.
func checkSenderOrder(tb testing.TB, order []message, sent map[*node][]string) {
	tb.Helper()
	pos := map[string]int{}
	for i, m := range order {
		pos[m.Body] = i
	}
	for n, bs := range sent {
		for i := 1; i < len(bs); i++ {
			if pos[bs[i-1]] > pos[bs[i]] {
				tb.Errorf("%s sent %q before %q, but the group orders them the other way", n.name, bs[i-1], bs[i])
			}
		}
	}
}

// checkInSync waits until every node's sync status says the group is in
// sync with nothing missing.
func checkInSync(tb testing.TB, nodes []*node) {
	tb.Helper()
	start := time.Now()
	defer func() {
		if !tb.Failed() {
			tb.Logf("sync status: in sync on every node %s after the messages converged", time.Since(start).Round(time.Millisecond))
		}
	}()
	for _, n := range nodes {
		waitFor(tb, n.name+" in sync", 30*time.Second, func() error {
			var st []struct {
				Name   string `json:"name"`
				InSync bool   `json:"in_sync"`
				Logs   []struct {
					Log     string `json:"log"`
					Missing int    `json:"missing"`
				} `json:"logs"`
			}
			n.cliJSON(tb, &st, "sync", "status", groupName, "--json")
			if len(st) != 1 {
				return fmt.Errorf("sync status lists %d groups, want 1", len(st))
			}
			for _, l := range st[0].Logs {
				if l.Missing != 0 {
					return fmt.Errorf("log %s misses %d entries", l.Log, l.Missing)
				}
			}
			if !st[0].InSync {
				return fmt.Errorf("%s: not in sync: %+v", n.name, st[0])
			}
			return nil
		})
	}
}

// latencies returns, for every message of only that a follower saw and
// another node sent, the time from its sent_at to its arrival at the
// follower, shortest first.
func latencies(tb testing.TB, followers []*follower, order []message, senders map[string]*node, only []string) []time.Duration {
	tb.Helper()
	byBody := map[string]message{}
	for _, m := range order {
		byBody[m.Body] = m
	}
	var out []time.Duration
	for _, f := range followers {
		for body, at := range f.arrivals(tb) {
			m, ok := byBody[body]
			if !ok {
				tb.Errorf("%s: follower printed %q, which the group does not hold", f.node.name, body)
				continue
			}
			if senders[body] == f.node || !slices.Contains(only, body) {
				continue
			}
			out = append(out, at.Sub(m.SentAt))
		}
	}
	slices.Sort(out)
	return out
}

// TestThreeHosts is issue 4's "three nodes, invite and join, messages in
// all directions, the same order everywhere", through the real binary with
// its plugins out of process, each node on a host (namespace) of its own:
// one message from each node in turn, then a burst from all three at once;
// every node ends with every message, in one order, each sender's
// messages in the order sent, and reports the group in sync.
func TestThreeHosts(t *testing.T) {
	c := newCluster(t)
	var followers []*follower
	for _, n := range c.nodes {
		followers = append(followers, n.follow(t, groupName))
	}

	senders := map[string]*node{}
	var want []string
	sent := map[*node][]string{}
	// One at a time: each message reaches both others before the next.
	const rounds = 3
	for r := range rounds {
		for _, n := range c.nodes {
			body := fmt.Sprintf("hello #%d from %s", r, n.name)
			sendAll(t, map[*node][]string{n: {body}})
			senders[body] = n
			want = append(want, body)
			sent[n] = append(sent[n], body)
			// Wait on the followers' output rather than polling the
			// nodes with CLI processes, which would load the machine and
			// the measured latency.
			for _, f := range followers {
				f.waitBodies(t, want, 30*time.Second)
			}
		}
	}
	oneByOne := slices.Clone(want)
	waitConverged(t, c.nodes, want, 30*time.Second)
	// All at once: concurrent writes on three hosts.
	const burst = 5
	round := map[*node][]string{}
	for _, n := range c.nodes {
		for i := range burst {
			body := fmt.Sprintf("burst from %s #%d", n.name, i)
			round[n] = append(round[n], body)
			senders[body] = n
			want = append(want, body)
			sent[n] = append(sent[n], body)
		}
	}
	sendAll(t, round)
	sendsDone := time.Now()
	for _, f := range followers {
		f.waitBodies(t, want, 60*time.Second)
	}
	t.Logf("burst of %d concurrent messages (%d per host) delivered on all three hosts %s after the last send returned",
		burst*len(c.nodes), burst, time.Since(sendsDone).Round(time.Millisecond))
	order, _ := waitConverged(t, c.nodes, want, 30*time.Second)
	checkSenderOrder(t, order, sent)
	checkInSync(t, c.nodes)

	// Every follower printed every message, once (arrivals checks).
	for _, f := range followers {
		if got, n := len(f.arrivals(t)), len(f.out.snapshot()); got != len(want) || n != len(want) {
			t.Errorf("%s: messages --follow printed %d lines, %d messages; want %d", f.node.name, n, got, len(want))
		}
	}
	for _, r := range []struct {
		name   string
		bodies []string
	}{
		{"one at a time", oneByOne},
		{"during the burst", want[len(oneByOne):]},
	} {
		lat := latencies(t, followers, order, senders, r.bodies)
		if len(lat) != 2*len(r.bodies) {
			t.Fatalf("%s: %d deliveries to other hosts measured, want %d", r.name, len(lat), 2*len(r.bodies))
		}
		t.Logf("message latency across namespaces, %s (sent_at to the line from messages --follow --json on another host, %d deliveries): p50 %s, p90 %s, max %s",
			r.name, len(lat), lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*9/10].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	}
}

// TestPartitionHeal is issue 4's "partition and heal (two sides with no
// path, then reconnected) converge", between hosts: a's link is cut, so a
// is on one side and b and c on the other. Both sides send; each side
// keeps working (b and c exchange their messages; a lists its own) and
// nothing crosses; after the link comes back, all three hold every
// message in one order, the history from before the partition unchanged
// at its head.
func TestPartitionHeal(t *testing.T) {
	tests := []struct {
		name string
		// untilDisconnected holds the partition until libp2p on both
		// sides has given up the connections across it (yamux keepalive:
		// 30 s interval, 10 s timeout), so that healing needs new
		// connections rather than TCP retransmissions.
		untilDisconnected bool
	}{
		{name: "brief"},
		{name: "until disconnected", untilDisconnected: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.untilDisconnected && testing.Short() {
				t.Skip("-short: holds the partition for about 40 s")
			}
			partitionHeal(t, tc.untilDisconnected)
		})
	}
}

func partitionHeal(t *testing.T, untilDisconnected bool) {
	c := newCluster(t)
	var want []string
	for _, n := range c.nodes {
		body := "before the partition, from " + n.name
		sendAll(t, map[*node][]string{n: {body}})
		want = append(want, body)
	}
	before, _ := waitConverged(t, c.nodes, want, 30*time.Second)

	c.topo.cut(t, "a")
	t.Log("partitioned: a | b, c")
	const each = 3
	during := map[*node][]string{}
	for _, n := range c.nodes {
		for i := range each {
			during[n] = append(during[n], fmt.Sprintf("during the partition, from %s #%d", n.name, i))
		}
	}
	sendAll(t, during)
	sideA := append(slices.Clone(want), during[c.a]...)
	sideBC := append(append(slices.Clone(want), during[c.b]...), during[c.c]...)
	// Both sides keep working among themselves, and a message from the
	// other side showing up on the way is a failure at once.
	noneOf := func(n *node, forbidden []string) {
		for _, m := range n.messages(t, groupName) {
			if slices.Contains(forbidden, m.Body) {
				t.Fatalf("%s holds %q, sent on the other side of the partition", n.name, m.Body)
			}
		}
	}
	waitFor(t, "each side converged on its own messages", 30*time.Second, func() error {
		noneOf(c.a, append(slices.Clone(during[c.b]), during[c.c]...))
		noneOf(c.b, during[c.a])
		noneOf(c.c, during[c.a])
		if err := holds(c.a.messages(t, groupName), sideA); err != nil {
			return fmt.Errorf("a %w", err)
		}
		for _, n := range []*node{c.b, c.c} {
			if err := holds(n.messages(t, groupName), sideBC); err != nil {
				return fmt.Errorf("%s %w", n.name, err)
			}
		}
		return nil
	})
	waitConverged(t, []*node{c.b, c.c}, sideBC, 30*time.Second)
	// And nothing crosses: watched for a while after b and c converged
	// (a message crossing would have arrived by then, as b's reached c).
	const watch = 3 * time.Second
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(watch); time.Now().Before(end); <-tick.C {
		if err := holds(c.a.messages(t, groupName), sideA); err != nil {
			t.Fatalf("a, cut off: %v", err)
		}
		for _, n := range []*node{c.b, c.c} {
			if err := holds(n.messages(t, groupName), sideBC); err != nil {
				t.Fatalf("%s, cut off from a: %v", n.name, err)
			}
		}
	}
	t.Logf("no message crossed the partition in %s of watching; a's peers: %d, b's: %d", watch,
		len(c.a.peerIDs(t)), len(c.b.peerIDs(t)))
	if untilDisconnected {
		took := waitFor(t, "the connections across the partition dropped", 90*time.Second, func() error {
			if ids := c.a.peerIDs(t); len(ids) != 0 {
				return fmt.Errorf("a still lists peers %v", ids)
			}
			for _, n := range []*node{c.b, c.c} {
				if slices.Contains(n.peerIDs(t), c.a.peerID) {
					return fmt.Errorf("%s still lists a", n.name)
				}
			}
			return nil
		})
		t.Logf("connections across the partition dropped %s later", took.Round(time.Second))
	}

	c.topo.heal(t, "a")
	healed := time.Now()
	if untilDisconnected {
		// Healing needs a new connection across: someone must dial.
		took := waitFor(t, "a reconnected to b or c after the heal", 60*time.Second, func() error {
			if len(c.a.peerIDs(t)) == 0 {
				return fmt.Errorf("a lists no peers, b lists %d, c lists %d (the network plugin should redial lost wanted peers: redial_max_backoff)",
					len(c.b.peerIDs(t)), len(c.c.peerIDs(t)))
			}
			return nil
		})
		t.Logf("a reconnected %s after the heal", took.Round(time.Millisecond))
	}
	all := append(slices.Clone(sideBC), during[c.a]...)
	order, _ := waitConverged(t, c.nodes, all, 120*time.Second)
	converge := time.Since(healed)
	t.Logf("converged %s after the heal: %d messages, the same order on a, b and c", converge.Round(time.Millisecond), len(all))
	if !slices.Equal(cids(order[:len(before)]), cids(before)) {
		t.Errorf("the history before the partition changed: was %q, now begins %q", bodies(before), bodies(order[:len(before)]))
	}
	sent := map[*node][]string{}
	for _, n := range c.nodes {
		sent[n] = during[n]
	}
	checkSenderOrder(t, order, sent)
	checkInSync(t, c.nodes)
}

// TestRendezvous is the Internet's shape between hosts: two members know
// nothing of each other, only a DHT node (a third host, in DHT server
// mode, in no group) they bootstrap to. The joiner finds the inviter at the
// group's DHT rendezvous, and messages flow both ways; the members end up
// connected to each other directly.
func TestRendezvous(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the rendezvous between hosts")
	}
	topo := newTopology(t, "dht", "x", "y")
	dht := startNodeWith(t, topo.hosts["dht"], "      dht_mode: server\n")
	x := startNodeWith(t, topo.hosts["x"], "      dht_mode: client\n", dht.dialAddr)
	y := startNodeWith(t, topo.hosts["y"], "      dht_mode: client\n", dht.dialAddr)
	if slices.Contains(x.peerIDs(t), y.peerID) {
		t.Fatal("x and y are connected before any group exists")
	}
	var g struct {
		ID string `json:"id"`
	}
	x.cliJSON(t, &g, "group", "create", groupName, "--json")
	var inv struct {
		Token string `json:"token"`
	}
	x.cliJSON(t, &inv, "group", "invite", groupName, "--json")
	start := time.Now()
	var joined struct {
		ID string `json:"id"`
	}
	y.cliJSON(t, &joined, "group", "join", inv.Token, "--name", groupName, "--timeout", "60s", "--json")
	if joined.ID != g.ID {
		t.Fatalf("y joined group %s, want %s", joined.ID, g.ID)
	}
	t.Logf("y found x at the rendezvous and joined in %s", time.Since(start).Round(time.Millisecond))
	for _, n := range []*node{x, y} {
		waitFor(t, n.name+" sees two members", 30*time.Second, func() error {
			var ms []map[string]any
			n.cliJSON(t, &ms, "group", "members", groupName, "--json")
			if len(ms) != 2 {
				return fmt.Errorf("%s sees %d members", n.name, len(ms))
			}
			return nil
		})
	}
	sendAll(t, map[*node][]string{x: {"from x"}, y: {"from y"}})
	waitConverged(t, []*node{x, y}, []string{"from x", "from y"}, 30*time.Second)
	if !slices.Contains(x.peerIDs(t), y.peerID) {
		t.Fatal("x and y exchanged messages without a direct connection")
	}
	var st []struct {
		Rendezvous struct {
			Found int    `json:"found"`
			Error string `json:"error"`
		} `json:"rendezvous"`
	}
	found := 0
	for _, n := range []*node{x, y} { // whichever looked up after the other provided
		n.cliJSON(t, &st, "sync", "status", groupName, "--json")
		if len(st) != 1 {
			t.Fatalf("%s's sync status: %+v", n.name, st)
		}
		found += st[0].Rendezvous.Found
	}
	if found < 1 {
		t.Fatal("x and y met, but neither's sync status says the rendezvous found the other")
	}
	var gs []map[string]any
	dht.cliJSON(t, &gs, "group", "list", "--json")
	if len(gs) != 0 {
		t.Fatalf("the DHT node lists groups: %v", gs)
	}
}
