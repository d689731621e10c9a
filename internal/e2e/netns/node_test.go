//go:build linux

package netns

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The skein binary, built once by skeinBinary and removed by TestMain.
var (
	buildOnce sync.Once
	binDir    string
	skeinBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	// The test binary re-executed inside a namespace (tcpReachable).
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperAddrEnv)))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// skeinBinary builds cmd/node once for the whole package and returns the
// binary's path. It is built only when a test gets past its skip checks.
func skeinBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "skein-netns-e2e-")
		if buildErr != nil {
			return
		}
		skeinBin = filepath.Join(binDir, "skein")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", skeinBin, "github.com/skein-p2p/skein/cmd/node")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("build skein: %w\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return skeinBin
}

// stampedLine is one line of a child's output and when it was read.
type stampedLine struct {
	at   time.Time
	text string
}

// lineLog collects a child's output lines as they come.
type lineLog struct {
	mu    sync.Mutex
	lines []stampedLine
	added chan struct{}
	done  chan struct{}
}

func newLineLog(r io.Reader) *lineLog {
	l := &lineLog{added: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, stampedLine{at: time.Now(), text: sc.Text()})
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// snapshot returns the lines read so far.
func (l *lineLog) snapshot() []stampedLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// text returns the lines read so far, joined.
func (l *lineLog) text() string {
	var b strings.Builder
	for _, s := range l.snapshot() {
		b.WriteString(s.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// wait returns the first line containing s, failing the test after d or
// when the output ends without it.
func (l *lineLog) wait(tb testing.TB, s string, d time.Duration) string {
	tb.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		for _, line := range l.snapshot() {
			if strings.Contains(line.text, s) {
				return line.text
			}
		}
		select {
		case <-l.added:
		case <-l.done:
			for _, line := range l.snapshot() {
				if strings.Contains(line.text, s) {
					return line.text
				}
			}
			tb.Fatalf("output ended without %q:\n%s", s, l.text())
		case <-deadline.C:
			tb.Fatalf("no %q within %s:\n%s", s, d, l.text())
		}
	}
}

// node is one `skein run` inside a host's namespace.
type node struct {
	name    string
	host    *host
	dataDir string
	env     []string
	cmd     *exec.Cmd
	log     *lineLog
	// peerID and dialAddr are the network plugin's peer id and its
	// address on the namespace's link, ending in /p2p/<peer id>.
	peerID, dialAddr string
	// launched is when the last launch started the process.
	launched time.Time
}

// nodePort is the TCP port every node's network plugin listens on: each
// namespace has ports of its own.
const nodePort = 4001

// startNode initialises a data directory with `skein init`, points the
// network plugin at the host's address and at the bootstrap peers, and
// runs `ip netns exec <ns> skein run` until the test ends. It returns once
// the node serves its client API and its network is up.
func startNode(tb testing.TB, h *host, bootstrap ...string) *node {
	tb.Helper()
	return startNodeWith(tb, h, "", bootstrap...)
}

// startNodeWith is startNode with netExtra (YAML lines, indented as the
// network plugin's config keys) added to the network plugin's config.
func startNodeWith(tb testing.TB, h *host, netExtra string, bootstrap ...string) *node {
	tb.Helper()
	skeinBinary(tb) // built before n.run uses it
	n := &node{
		name:    h.name,
		host:    h,
		dataDir: filepath.Join(tb.TempDir(), h.name),
		// A clean environment: no SKEIN_* variables of the machine.
		env: []string{"HOME=" + tb.TempDir(), "TMPDIR=" + tb.TempDir(), "PATH=" + os.Getenv("PATH")},
	}
	if _, err := n.run("init", "--data-dir", n.dataDir); err != nil {
		tb.Fatalf("%s: %v", n.name, err)
	}
	// The config `skein init` wrote, with the network listening on this
	// namespace's address only, over TCP, and the bootstrap peers.
	cfgPath := filepath.Join(n.dataDir, "skein.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		tb.Fatal(err)
	}
	const initBootstrap = "      bootstrap: []\n"
	if !bytes.Contains(cfg, []byte(initBootstrap)) {
		tb.Fatalf("%s: the config skein init wrote has no %q line to replace:\n%s", n.name, initBootstrap, cfg)
	}
	quoted := make([]string, len(bootstrap))
	for i, b := range bootstrap {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	netCfg := fmt.Sprintf("      listen: [\"/ip4/%s/tcp/%d\"]\n      bootstrap: [%s]\n", h.addr, nodePort, strings.Join(quoted, ", ")) + netExtra
	cfg = bytes.Replace(cfg, []byte(initBootstrap), []byte(netCfg), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		tb.Fatal(err)
	}

	n.launch(tb)

	var id struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	n.cliJSON(tb, &id, "id", "--json")
	want := fmt.Sprintf("/ip4/%s/tcp/%d", h.addr, nodePort)
	for _, a := range id.Addrs {
		if strings.HasPrefix(a, want) {
			n.dialAddr = want + "/p2p/" + id.PeerID
		}
	}
	if id.PeerID == "" || n.dialAddr == "" {
		tb.Fatalf("%s: id %+v: no peer id or no address on %s", n.name, id, want)
	}
	n.peerID = id.PeerID
	return n
}

// launch runs `ip netns exec <ns> skein run` on the node's data
// directory until the test ends, and returns once the node serves its
// client API. A stopped node is launched again the same way.
func (n *node) launch(tb testing.TB) {
	tb.Helper()
	n.cmd = exec.Command("ip", "netns", "exec", n.host.ns, skeinBinary(tb), "run", "--data-dir", n.dataDir)
	n.cmd.Env = n.env
	// If the test binary dies, the node goes with it (ip netns exec
	// execs skein in place, so this is skein's own setting).
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	n.launched = time.Now()
	if err := n.cmd.Start(); err != nil {
		tb.Fatalf("%s: start skein run in %s: %v", n.name, n.host.ns, err)
	}
	n.log = newLineLog(stderr)
	tb.Cleanup(func() { n.stop(tb) })
	n.log.wait(tb, "client API serving", 60*time.Second)
	n.log.wait(tb, "node running", 60*time.Second)
}

// stop ends the node with SIGTERM (SIGKILL if it has not stopped 15 s
// later) and waits for it.
func (n *node) stop(tb testing.TB) {
	tb.Helper()
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- n.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil && !tb.Failed() {
			tb.Errorf("%s: skein run exited with %v after SIGTERM\n%s", n.name, err, n.log.text())
		}
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		<-exited
		tb.Errorf("%s: skein run still running 15s after SIGTERM; killed\n%s", n.name, n.log.text())
	}
}

// run runs a skein command for this node (outside the namespace: the
// client API is a unix socket, which namespaces do not separate) and
// returns its stdout.
func (n *node) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, skeinBin, args...)
	cmd.Env = n.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("skein %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// cli runs a client command against this node and fails the test if it
// fails.
func (n *node) cli(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := n.run(append(args, "--data-dir", n.dataDir)...)
	if err != nil {
		tb.Fatalf("%s: %v", n.name, err)
	}
	return out
}

// cliJSON runs a client command and decodes its JSON output into v.
func (n *node) cliJSON(tb testing.TB, v any, args ...string) {
	tb.Helper()
	out := n.cli(tb, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		tb.Fatalf("%s: skein %s: not JSON: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
}

// message is one line of `skein messages --json`.
type message struct {
	CID     string    `json:"cid"`
	Body    string    `json:"body"`
	Account string    `json:"account"`
	SentAt  time.Time `json:"sent_at"`
}

// parseMessages decodes `skein messages --json` output: one object a line.
func parseMessages(out string) ([]message, error) {
	var ms []message
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("messages --json line %q: %w", line, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// messages returns the group's messages on this node, in the group's order.
func (n *node) messages(tb testing.TB, group string) []message {
	tb.Helper()
	ms, err := parseMessages(n.cli(tb, "messages", group, "--json"))
	if err != nil {
		tb.Fatalf("%s: %v", n.name, err)
	}
	return ms
}

// peerIDs returns the ids of the peers the node is connected to.
func (n *node) peerIDs(tb testing.TB) []string {
	tb.Helper()
	var ps []struct {
		ID string `json:"id"`
	}
	n.cliJSON(tb, &ps, "peers", "--json")
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// send sends body to group from this node.
func (n *node) send(group, body string) error {
	_, err := n.run("send", group, body, "--data-dir", n.dataDir)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	return nil
}

// follower is a `skein messages <group> --follow --json` running against
// a node, noting when each message arrives.
type follower struct {
	node *node
	cmd  *exec.Cmd
	out  *lineLog
}

// follow starts a follower; it is stopped when the test ends.
func (n *node) follow(tb testing.TB, group string) *follower {
	tb.Helper()
	f := &follower{node: n, cmd: exec.Command(skeinBin, "messages", group, "--follow", "--json", "--data-dir", n.dataDir)}
	f.cmd.Env = n.env
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	f.out = newLineLog(stdout)
	tb.Cleanup(func() {
		_ = f.cmd.Process.Signal(syscall.SIGTERM)
		_ = f.cmd.Wait()
	})
	return f
}

// waitBodies waits until the follower has printed every body in want,
// watching its output (no polling of the node), and fails the test after
// limit.
func (f *follower) waitBodies(tb testing.TB, want []string, limit time.Duration) {
	tb.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		got := f.arrivals(tb)
		var missing []string
		for _, b := range want {
			if _, ok := got[b]; !ok {
				missing = append(missing, b)
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-f.out.added:
		case <-f.out.done:
			tb.Fatalf("%s: messages --follow ended without %q", f.node.name, missing)
		case <-deadline.C:
			tb.Fatalf("%s: messages --follow did not print %q within %s", f.node.name, missing, limit)
		}
	}
}

// arrivals returns each message the follower printed and when.
func (f *follower) arrivals(tb testing.TB) map[string]time.Time {
	tb.Helper()
	got := map[string]time.Time{}
	for _, l := range f.out.snapshot() {
		var m message
		if err := json.Unmarshal([]byte(l.text), &m); err != nil {
			tb.Fatalf("%s: messages --follow --json line %q: %v", f.node.name, l.text, err)
		}
		if _, seen := got[m.Body]; seen {
			tb.Errorf("%s: messages --follow printed %q twice", f.node.name, m.Body)
		}
		got[m.Body] = l.at
	}
	return got
}

// waitFor polls cond every 50 ms until it returns nil, and fails the test
// with cond's last error when limit passes. It returns how long it took.
func waitFor(tb testing.TB, what string, limit time.Duration, cond func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			tb.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		<-tick.C
	}
}
