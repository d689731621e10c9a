//go:build linux

package netns

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The LAN tests: nodes made by `skein init --preset lan` and run as
// written, with no address, peer or bootstrap configured anywhere: they
// find each other by multicast DNS (plugins/mdns) over the bridges.

// lanPresetPath is the preset in the source tree, which `skein init
// --preset lan` must write unchanged.
const lanPresetPath = "../../../cmd/node/presets/lan.yaml"

// startLANNode initialises a data directory with `skein init --preset
// lan` and runs `skein run` on it in h's namespace, the config untouched
// (env may add SKEIN_ variables).
func startLANNode(tb testing.TB, h *host, env ...string) *node {
	tb.Helper()
	skeinBinary(tb)
	n := &node{
		name:    h.name,
		host:    h,
		dataDir: filepath.Join(tb.TempDir(), h.name),
		env:     []string{"HOME=" + tb.TempDir(), "TMPDIR=" + tb.TempDir(), "PATH=" + os.Getenv("PATH")},
	}
	if _, err := n.run("init", "--preset", "lan", "--data-dir", n.dataDir); err != nil {
		tb.Fatalf("%s: %v", n.name, err)
	}
	written, err := os.ReadFile(filepath.Join(n.dataDir, "skein.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	preset, err := os.ReadFile(lanPresetPath)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(written, preset) {
		tb.Fatalf("%s: skein init --preset lan wrote a config other than %s", n.name, lanPresetPath)
	}
	n.env = append(n.env, env...)
	n.launch(tb)
	var id struct {
		PeerID string `json:"peer_id"`
	}
	n.cliJSON(tb, &id, "id", "--json")
	if id.PeerID == "" {
		tb.Fatalf("%s: no peer id", n.name)
	}
	n.peerID = id.PeerID
	return n
}

// lanPeer is one line of `skein peers --json`.
type lanPeer struct {
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"`
	FoundBy []string `json:"found_by"`
}

func (n *node) lanPeers(tb testing.TB) []lanPeer {
	tb.Helper()
	var ps []lanPeer
	n.cliJSON(tb, &ps, "peers", "--json")
	return ps
}

// waitMDNSPeers waits until n is connected to every node of others, each
// found by mdns, and returns how long that took.
func waitMDNSPeers(tb testing.TB, n *node, others []*node, limit time.Duration) time.Duration {
	tb.Helper()
	return waitFor(tb, n.name+" connected to "+names(others)+" found by mdns", limit, func() error {
		ps := n.lanPeers(tb)
		for _, o := range others {
			i := slices.IndexFunc(ps, func(p lanPeer) bool { return p.ID == o.peerID })
			if i < 0 {
				return fmt.Errorf("%s's peers %+v lack %s", n.name, ps, o.name)
			}
			if !slices.Contains(ps[i].FoundBy, "mdns") {
				return fmt.Errorf("%s found %s by %q, want mdns", n.name, o.name, ps[i].FoundBy)
			}
		}
		return nil
	})
}

func names(ns []*node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	return strings.Join(s, ",")
}

// createAndInvite makes the group on creator and has every joiner join it
// with a token the creator (or inviter[joiner], if set) made, passed
// through the test.
func createAndInvite(tb testing.TB, creator *node, joiners []*node, inviter map[*node]*node) string {
	tb.Helper()
	var g struct {
		ID string `json:"id"`
	}
	creator.cliJSON(tb, &g, "group", "create", groupName, "--json")
	for _, n := range joiners {
		from := creator
		if inviter[n] != nil {
			from = inviter[n]
		}
		var inv struct {
			Token string `json:"token"`
		}
		from.cliJSON(tb, &inv, "group", "invite", groupName, "--json")
		var joined struct {
			ID string `json:"id"`
		}
		n.cliJSON(tb, &joined, "group", "join", inv.Token, "--name", groupName, "--timeout", "60s", "--json")
		if joined.ID != g.ID {
			tb.Fatalf("%s joined %s, want %s", n.name, joined.ID, g.ID)
		}
	}
	all := append([]*node{creator}, joiners...)
	for _, n := range all {
		waitFor(tb, n.name+" sees every member", 60*time.Second, func() error {
			var ms []map[string]any
			n.cliJSON(tb, &ms, "group", "members", groupName, "--json")
			if len(ms) != len(all) {
				return fmt.Errorf("%s sees %d members, want %d", n.name, len(ms), len(all))
			}
			return nil
		})
	}
	return g.ID
}

// TestLANThreeNodes is issue 9's LAN: three hosts on one bridge, each
// `skein init --preset lan && skein run` and nothing else. They find each
// other by mDNS; one creates a group and invites the others; messages flow
// all ways; one node goes down, two messages are sent, it comes back and
// catches up. An observer on the bridge checks what mDNS tells the LAN.
func TestLANThreeNodes(t *testing.T) {
	topo := newTopology(t, "a", "b", "c", "obs")
	obs := startObserver(t, topo.hosts["obs"])
	var nodes []*node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, startLANNode(t, topo.hosts[name]))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitMDNSPeers(t, c, []*node{a, b}, 60*time.Second)
	t.Logf("c (started last, a and b running) connected to both by mDNS %s after its process started", time.Since(c.launched).Round(time.Millisecond))
	for _, n := range nodes {
		others := slices.DeleteFunc(slices.Clone(nodes), func(o *node) bool { return o == n })
		waitMDNSPeers(t, n, others, 60*time.Second)
	}

	groupID := createAndInvite(t, a, []*node{b, c}, nil)
	var followers []*follower
	for _, n := range nodes {
		followers = append(followers, n.follow(t, groupName))
	}
	var want []string
	for _, n := range nodes {
		body := "hello from " + n.name + " on the LAN"
		sendAll(t, map[*node][]string{n: {body}})
		want = append(want, body)
	}
	for _, f := range followers {
		f.waitBodies(t, want, 60*time.Second)
	}
	waitConverged(t, nodes, want, 60*time.Second)

	// c goes down; a and b send one message each; c comes back. (Its
	// follower first: an open stream holds the API's stop to its deadline.)
	_ = followers[2].cmd.Process.Signal(syscall.SIGTERM)
	_ = followers[2].cmd.Wait()
	c.stop(t)
	downWant := append(slices.Clone(want), "while c was down, from a", "while c was down, from b")
	sendAll(t, map[*node][]string{a: {downWant[3]}, b: {downWant[4]}})
	waitConverged(t, []*node{a, b}, downWant, 60*time.Second)
	c.launch(t)
	waitMDNSPeers(t, c, []*node{a, b}, 60*time.Second)
	peerAt := time.Since(c.launched)
	waitConverged(t, nodes, downWant, 120*time.Second)
	t.Logf("c restarted: connected to a and b %s after its process started, caught up with the two messages %s after",
		peerAt.Round(time.Millisecond), time.Since(c.launched).Round(time.Millisecond))
	checkInSync(t, nodes)

	// No node was ever given an address: every peer was found by mDNS.
	for _, n := range nodes {
		for _, p := range n.lanPeers(t) {
			if !slices.Contains(p.FoundBy, "mdns") {
				t.Errorf("%s: peer %s found by %q, want mdns", n.name, p.ID, p.FoundBy)
			}
		}
	}

	secrets := map[string][]byte{"group id": mustHex(t, groupID)}
	for _, n := range nodes {
		var id struct {
			Account string `json:"account"`
			Device  string `json:"device"`
		}
		n.cliJSON(t, &id, "id", "--json")
		secrets[n.name+"'s account key"] = mustHex(t, id.Account)
		secrets[n.name+"'s device key"] = mustHex(t, id.Device)
	}
	checkObserved(t, obs.stop(t), nodes, secrets)
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		tb.Fatalf("not hex: %q", s)
	}
	return b
}

// checkObserved checks what a LAN observer captured: multicast DNS with
// PTR and TXT records only, each TXT a peer id of one of the nodes and
// addresses on the bridge's subnet (no loopback), and none of the secrets
// (account, device, group) in any form, raw or hex.
func checkObserved(tb testing.TB, packets []observed, nodes []*node, secrets map[string][]byte) {
	tb.Helper()
	if len(packets) == 0 {
		tb.Fatal("the observer captured no mDNS packet")
	}
	ids := map[string]bool{}
	for _, n := range nodes {
		ids[n.peerID] = true
	}
	lan := netip.MustParsePrefix(subnet + ".0/24")
	announced := map[string]bool{}
	for _, p := range packets {
		for what, s := range secrets {
			if bytes.Contains(p.data, s) || bytes.Contains(bytes.ToLower(p.data), []byte(hex.EncodeToString(s))) {
				tb.Errorf("a packet from %s carries %s", p.src, what)
			}
		}
		var parser dnsmessage.Parser
		if _, err := parser.Start(p.data); err != nil {
			tb.Errorf("a packet from %s is not DNS: %v", p.src, err)
			continue
		}
		_ = parser.SkipAllQuestions()
		for {
			h, err := parser.AnswerHeader()
			if err != nil {
				break
			}
			switch h.Type {
			case dnsmessage.TypePTR:
				_ = parser.SkipAnswer()
			case dnsmessage.TypeTXT:
				r, err := parser.TXTResource()
				if err != nil {
					tb.Errorf("TXT from %s: %v", p.src, err)
					break
				}
				for _, s := range r.TXT {
					switch {
					case strings.HasPrefix(s, "id="):
						if !ids[s[3:]] {
							tb.Errorf("TXT from %s names %q, not a node's peer id", p.src, s)
						}
						announced[s[3:]] = true
					case strings.HasPrefix(s, "a="):
						f := strings.Split(s[2:], "/")
						ip, err := netip.ParseAddr(f[min(2, len(f)-1)])
						if err != nil || !lan.Contains(ip) {
							tb.Errorf("TXT from %s announces %q, not an address on the LAN", p.src, s)
						}
					default:
						tb.Errorf("TXT from %s holds %q", p.src, s)
					}
				}
			default:
				tb.Errorf("a packet from %s holds a %v record", p.src, h.Type)
				_ = parser.SkipAnswer()
			}
		}
	}
	if len(announced) != len(nodes) {
		tb.Errorf("the observer saw %d of the %d nodes announced", len(announced), len(nodes))
	}
	tb.Logf("observer: %d mDNS packets checked: peer ids and LAN addresses only", len(packets))
}

// TestLANTwoBridges: two LANs joined by one node on both. a (on the
// first) and b (on the second) cannot reach each other; m, on both, finds
// each by mDNS on its own link, and the group converges through it.
func TestLANTwoBridges(t *testing.T) {
	topo := newBridgedTopology(t, map[string][]string{"br1": {"a", "m"}, "br2": {"m", "b"}})
	a := startLANNode(t, topo.hosts["a"])
	m := startLANNode(t, topo.hosts["m"])
	b := startLANNode(t, topo.hosts["b"])
	waitMDNSPeers(t, m, []*node{a, b}, 60*time.Second)
	for _, n := range []*node{a, b} {
		waitMDNSPeers(t, n, []*node{m}, 60*time.Second)
	}
	// Each side was told only of its own link's addresses.
	for _, n := range []*node{a, b} {
		for _, p := range n.lanPeers(t) {
			if p.ID == a.peerID || p.ID == b.peerID {
				t.Fatalf("%s is connected to the other side's node %s", n.name, p.ID)
			}
		}
	}
	mp := m.lanPeers(t)
	for _, p := range mp {
		side := topo.hosts["a"].addr
		if p.ID == b.peerID {
			side = topo.hosts["b"].addr
		}
		for _, addr := range p.Addrs {
			if !strings.Contains(addr, "/"+side+"/") {
				t.Errorf("m reaches %s at %s, not on its side's link", p.ID, addr)
			}
		}
	}

	// a makes the group and invites m; b joins with a token from a,
	// through m.
	createAndInvite(t, a, []*node{m, b}, nil)
	nodes := []*node{a, m, b}
	want := []string{"from a across m", "from b across m", "from m to both"}
	sendAll(t, map[*node][]string{a: {want[0]}, b: {want[1]}, m: {want[2]}})
	waitConverged(t, nodes, want, 60*time.Second)
	checkInSync(t, nodes)
}

// newBridgedTopology creates one namespace per bridge and per host; a
// host on several bridges has an interface on each (eth0, eth1, ... in
// the order of the bridges' names), on that bridge's subnet (10.213.0,
// 10.214.0, ...). Hosts do not forward between their interfaces.
func newBridgedTopology(tb testing.TB, bridges map[string][]string) *topology {
	tb.Helper()
	requireNetns(tb)
	prefix := nsPrefix(tb)
	topo := &topology{bridgeNS: prefix + "-br", hosts: map[string]*host{}}
	var created []string
	tb.Cleanup(func() {
		for _, ns := range created {
			if _, err := ipCmd("netns", "del", ns); err != nil {
				tb.Errorf("remove namespace %s: %v", ns, err)
			}
		}
	})
	add := func(ns string) {
		mustIP(tb, "netns", "add", ns)
		created = append(created, ns)
		mustIP(tb, "-n", ns, "link", "set", "lo", "up")
	}
	add(topo.bridgeNS)
	brNames := slices.Sorted(func(yield func(string) bool) {
		for k := range bridges {
			if !yield(k) {
				return
			}
		}
	})
	ifaces := map[string]int{}
	hostNum := 0
	for bi, br := range brNames {
		mustIP(tb, "-n", topo.bridgeNS, "link", "add", br, "type", "bridge")
		mustIP(tb, "-n", topo.bridgeNS, "link", "set", br, "up")
		for _, name := range bridges[br] {
			h, ok := topo.hosts[name]
			if !ok {
				hostNum++
				h = &host{name: name, ns: prefix + "-" + name}
				add(h.ns)
				topo.hosts[name] = h
			}
			dev := fmt.Sprintf("eth%d", ifaces[name])
			ifaces[name]++
			port := "p-" + name + "-" + br
			addr := fmt.Sprintf("10.%d.0.%d", 213+bi, hostNum)
			if h.addr == "" {
				h.addr, h.port = addr, port
			}
			mustIP(tb, "link", "add", dev, "netns", h.ns, "type", "veth", "peer", "name", port, "netns", topo.bridgeNS)
			mustIP(tb, "-n", topo.bridgeNS, "link", "set", port, "master", br)
			mustIP(tb, "-n", topo.bridgeNS, "link", "set", port, "up")
			mustIP(tb, "-n", h.ns, "addr", "add", addr+"/24", "dev", dev)
			mustIP(tb, "-n", h.ns, "link", "set", dev, "up")
		}
	}
	return topo
}

// observed is one packet an observer captured.
type observed struct {
	src  string
	data []byte
}

// observer is the test binary, re-executed in a host's namespace,
// printing every multicast DNS packet it receives.
type observer struct {
	cmd *exec.Cmd
	out *lineLog
}

func startObserver(tb testing.TB, h *host) *observer {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	o := &observer{cmd: exec.Command("ip", "netns", "exec", h.ns, self)}
	o.cmd.Env = append(os.Environ(), helperEnv+"=observe")
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	o.cmd.Stderr = os.Stderr
	stdout, err := o.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := o.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	o.out = newLineLog(stdout)
	tb.Cleanup(func() {
		_ = o.cmd.Process.Kill()
		_ = o.cmd.Wait()
	})
	o.out.wait(tb, "observing", 10*time.Second)
	return o
}

// stop ends the observer and returns what it captured.
func (o *observer) stop(tb testing.TB) []observed {
	tb.Helper()
	return o.stopAt(tb, time.Time{}, time.Now().Add(time.Hour))
}

// stopAt ends the observer and returns what it captured from from to to.
func (o *observer) stopAt(tb testing.TB, from, to time.Time) []observed {
	tb.Helper()
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	_ = o.cmd.Wait()
	<-o.out.done
	var out []observed
	for _, l := range o.out.snapshot() {
		var rec struct {
			At   int64  `json:"at"`
			Src  string `json:"src"`
			Data string `json:"data"`
		}
		if l.text == "observing" {
			continue
		}
		if err := json.Unmarshal([]byte(l.text), &rec); err != nil {
			tb.Fatalf("observer line %q: %v", l.text, err)
		}
		if at := time.Unix(0, rec.At); at.Before(from) || !at.Before(to) {
			continue
		}
		out = append(out, observed{src: rec.Src, data: mustHex(tb, rec.Data)})
	}
	return out
}

// TestLANFlood: a hostile host on the LAN floods multicast DNS (fake
// peers at thousands a second from 16 addresses, records naming the
// node's own peer id, garbage, oversized packets, queries) while a real
// node joins. The flooded node keeps running with bounded memory, dials
// within its limits, and still finds the real node.
func TestLANFlood(t *testing.T) {
	topo := newTopology(t, "x", "y", "f")
	// A budget window (the query interval) of 10 s rather than 30 s: the
	// real node, arriving when the flood has spent the window's budget,
	// is reported at the next window.
	interval := "SKEIN_PLUGINS__MDNS__CONFIG__QUERY_INTERVAL=10s"
	x := startLANNode(t, topo.hosts["x"], interval)
	f := topo.hosts["f"]
	var sources []string
	for i := range 16 {
		addr := fmt.Sprintf("%s.%d", subnet, 100+i)
		mustIP(t, "-n", f.ns, "addr", "add", addr+"/24", "dev", "eth0")
		sources = append(sources, addr)
	}
	const rate = 3000
	fl := startFlooder(t, f, fmt.Sprintf("%d,%d,%s,%s", rate, 120, x.peerID, strings.Join(sources, " ")))
	mon := watchProcesses(t, x.cmd.Process.Pid)
	// The flood has run a moment, and the budgets are spent, when y starts.
	fl.out.wait(t, "flooding", 10*time.Second)
	waitFor(t, "x's mdns plugin to hear the flood", 30*time.Second, func() error {
		if mon.mdnsCPU() < 100*time.Millisecond {
			return fmt.Errorf("mdns plugin CPU %s", mon.mdnsCPU())
		}
		return nil
	})
	y := startLANNode(t, topo.hosts["y"], interval)
	took := waitMDNSPeers(t, x, []*node{y}, 90*time.Second)
	waitMDNSPeers(t, y, []*node{x}, 30*time.Second)
	sum := fl.stop(t)
	rss, cpu := mon.stop()
	if x.cmd.ProcessState != nil {
		t.Fatalf("x exited during the flood:\n%s", x.log.text())
	}
	logs := x.log.text()
	if strings.Contains(logs, `plugin process exited" plugin=mdns`) {
		t.Fatalf("x's mdns plugin exited during the flood:\n%s", logs)
	}
	// Bounded memory: the mdns plugin's resident set stays small (its
	// cache holds at most 512 peers).
	if rss["mdns"] > 100<<20 {
		t.Errorf("x's mdns plugin grew to %d MiB under the flood", rss["mdns"]>>20)
	}
	peers := x.lanPeers(t)
	t.Logf("flood: %v packets (%v bytes) in %.1fs from %d addresses, kinds %v", sum["packets"], sum["bytes"], sum["seconds"], len(sources), sum["kinds"])
	t.Logf("flooded node x: the real node y found and connected %s after y's start; x connected to %d peers", took.Round(time.Millisecond), len(peers))
	for _, p := range []string{"node", "mdns", "network", "store"} {
		t.Logf("x's %s process: resident %.1f MiB before the flood, at most %.1f MiB during it; CPU %s during it",
			p, float64(mon.rss0[p])/(1<<20), float64(rss[p])/(1<<20), cpu[p].Round(10*time.Millisecond))
	}
	for _, l := range x.log.snapshot() {
		if strings.Contains(l.text, "refused or held back") || strings.Contains(l.text, "discovered peers not reached") {
			t.Logf("x: %s", l.text)
		}
	}
}

// flooder is the test binary flooding the LAN from a host's namespace.
type flooder struct {
	cmd *exec.Cmd
	out *lineLog
}

func startFlooder(tb testing.TB, h *host, cfg string) *flooder {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	f := &flooder{cmd: exec.Command("ip", "netns", "exec", h.ns, self)}
	f.cmd.Env = append(os.Environ(), helperEnv+"=flood", helperAddrEnv+"="+cfg)
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	f.cmd.Stderr = os.Stderr
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	f.out = newLineLog(stdout)
	tb.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		_ = f.cmd.Wait()
	})
	return f
}

// stop ends the flood and returns the flooder's summary.
func (f *flooder) stop(tb testing.TB) map[string]any {
	tb.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	_ = f.cmd.Wait()
	<-f.out.done
	lines := f.out.snapshot()
	var sum map[string]any
	if len(lines) == 0 || json.Unmarshal([]byte(lines[len(lines)-1].text), &sum) != nil {
		tb.Fatalf("flooder printed no summary: %v", lines)
	}
	return sum
}

// processWatch samples a node's processes (the node and its plugins)
// from /proc: the most resident memory of each, and their CPU time.
type processWatch struct {
	pid  int
	done chan struct{}
	mu   sync.Mutex
	rss0 map[string]int64 // at the start
	rss  map[string]int64
	cpu  map[string]time.Duration
	cpu0 map[string]time.Duration
	wg   sync.WaitGroup
}

func watchProcesses(tb testing.TB, pid int) *processWatch {
	tb.Helper()
	w := &processWatch{pid: pid, done: make(chan struct{}), rss: map[string]int64{}, cpu: map[string]time.Duration{}}
	w.cpu0 = w.sample()
	w.rss0 = maps.Clone(w.rss)
	w.wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				w.sample()
			}
		}
	})
	tb.Cleanup(func() { w.stop() })
	return w
}

// sample reads each process's resident memory (keeping the most) and CPU
// time, and returns the CPU times.
func (w *processWatch) sample() map[string]time.Duration {
	procs := map[string]int{"node": w.pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(w.pid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		for name, id := range map[string]string{"mdns": "discovery.mdns", "network": "network.ipfs", "store": "store.pebble"} {
			if bytes.Contains(cmdline, []byte(id)) {
				procs[name] = pid
			}
		}
	}
	cpu := map[string]time.Duration{}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, pid := range procs {
		if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for line := range strings.Lines(string(status)) {
				if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
					w.rss[name] = max(w.rss[name], kb<<10)
				}
			}
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) > 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				cpu[name] = time.Duration(ut+st) * time.Second / 100 // USER_HZ
				if w.cpu0 != nil {
					w.cpu[name] = cpu[name] - w.cpu0[name]
				}
			}
		}
	}
	return cpu
}

func (w *processWatch) mdnsCPU() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cpu["mdns"]
}

// stop ends the sampling and returns the most resident memory and the
// CPU time used since the watch started, per process.
func (w *processWatch) stop() (map[string]int64, map[string]time.Duration) {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.rss), maps.Clone(w.cpu)
}

// measureEnv set to a number of rounds runs TestLANMeasure: figures, not
// a check, so not in the default run (it takes about three minutes).
const measureEnv = "SKEIN_LAN_MEASURE"

// TestLANMeasure measures the lan preset on a bridge: the time from a
// node's start to its first peer found by mDNS (fresh nodes joining two
// running ones), from a member's start to the first message delivered to
// it (one sent while it was down; its network's list of peers to redial
// removed, so only mDNS finds them), a message's latency from send to
// another host's `messages --follow`, and the multicast DNS traffic each
// node sends per minute at rest.
//
//	SKEIN_LAN_MEASURE=5 go test -run TestLANMeasure -v ./internal/e2e/netns
func TestLANMeasure(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv(measureEnv))
	if rounds <= 0 {
		t.Skip("set " + measureEnv + "=<rounds> to measure")
	}
	hosts := []string{"a", "b", "obs"}
	for i := range rounds {
		hosts = append(hosts, fmt.Sprintf("n%d", i))
	}
	topo := newTopology(t, hosts...)
	obs := startObserver(t, topo.hosts["obs"])
	a := startLANNode(t, topo.hosts["a"])
	b := startLANNode(t, topo.hosts["b"])
	waitMDNSPeers(t, b, []*node{a}, 60*time.Second)
	createAndInvite(t, a, []*node{b}, nil)

	var firstPeer, firstMessage, latency []time.Duration
	for i := range rounds {
		n := startLANNode(t, topo.hosts[fmt.Sprintf("n%d", i)])
		waitFor(t, n.name+" finds a peer", 60*time.Second, func() error {
			if len(n.lanPeers(t)) == 0 {
				return fmt.Errorf("no peer yet")
			}
			return nil
		})
		firstPeer = append(firstPeer, time.Since(n.launched))
		n.stop(t)
	}
	f := a.follow(t, groupName)
	for i := range rounds {
		// b down; a message from a; b back with no peer list of its own.
		b.stop(t)
		body := fmt.Sprintf("while b was down #%d", i)
		sendAll(t, map[*node][]string{a: {body}})
		if err := os.Remove(filepath.Join(b.dataDir, "network", "wanted-peers.json")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		b.launch(t)
		waitFor(t, "b gets "+body, 60*time.Second, func() error {
			if !slices.Contains(bodies(b.messages(t, groupName)), body) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		firstMessage = append(firstMessage, time.Since(b.launched))
		live := fmt.Sprintf("live #%d", i)
		sent := time.Now()
		sendAll(t, map[*node][]string{b: {live}})
		f.waitBodies(t, []string{live}, 30*time.Second)
		latency = append(latency, f.arrivals(t)[live].Sub(sent))
	}
	stat := func(ds []time.Duration) string {
		s := slices.Clone(ds)
		slices.Sort(s)
		return fmt.Sprintf("min %s, median %s, max %s (%d runs)", s[0].Round(time.Millisecond), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
	}
	t.Logf("start to first peer found by mDNS (two nodes running): %s", stat(firstPeer))
	t.Logf("member start to the first message delivered to it (sent while it was down; found by mDNS only): %s", stat(firstMessage))
	t.Logf("message latency, send on one host to messages --follow on another (includes the CLI's process start): %s", stat(latency))

	// At rest: a and b connected, nothing sent. Queries back off to the
	// query interval within about 31 s; then a minute is counted.
	settle, window := 45*time.Second, time.Minute
	quiet := time.Now().Add(settle)
	waitFor(t, "the LAN settles", settle+time.Second, func() error {
		if time.Now().Before(quiet) {
			return fmt.Errorf("settling")
		}
		return nil
	})
	from := time.Now()
	end := from.Add(window)
	waitFor(t, "a minute at rest", window+time.Second, func() error {
		if time.Now().Before(end) {
			return fmt.Errorf("counting")
		}
		return nil
	})
	type count struct{ packets, bytes, wire int }
	per := map[string]*count{}
	for _, p := range obs.stopAt(t, from, end) {
		host := p.src
		if h, _, err := net.SplitHostPort(p.src); err == nil {
			host = h
		}
		c := per[host]
		if c == nil {
			c = &count{}
			per[host] = c
		}
		c.packets++
		c.bytes += len(p.data)
		hdr := 14 + 20 + 8 // Ethernet, IPv4, UDP
		if strings.Contains(host, ":") {
			hdr = 14 + 40 + 8
		}
		c.wire += len(p.data) + hdr
	}
	for _, host := range slices.Sorted(maps.Keys(per)) {
		c := per[host]
		t.Logf("at rest, %s sent %d mDNS packets in a minute: %d bytes of DNS, %d bytes on the wire", host, c.packets, c.bytes, c.wire)
	}
}
