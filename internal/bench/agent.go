package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
)

// Modes of the store and network plugins a scenario runs with.
const (
	ModeLinked  = "linked"
	ModeProcess = "process"
)

// agent is one node under test: `skein run` of the same binary as a child
// process (its plugins its own children in process mode), driven through
// its client API.
type agent struct {
	bin, dir, mode string
	cmd            *exec.Cmd
	lines          *lines
	cl             *client.Client
	// metricsAddr serves /metrics and /debug/pprof/.
	metricsAddr string
	// addr is the node's loopback TCP multiaddr with /p2p/<id>.
	addr string
	// started is when the process was started; ready when it served.
	started, ready time.Time
}

// initAgent creates a data directory with `skein init`.
func initAgent(ctx context.Context, bin, dir string) error {
	cmd := exec.CommandContext(ctx, bin, "init", "--data-dir", dir)
	cmd.Env = agentEnv(ModeProcess)[:2] // PATH and HOME: no plugin overrides before there is a config
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("skein init %s: %w: %s", dir, err, out)
	}
	return nil
}

// agentEnv is the environment of a node under test: plugins in mode,
// listening on loopback TCP only, metrics and profiles on a free loopback
// port.
func agentEnv(mode string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"SKEIN_PLUGINS__STORE__MODE=" + mode,
		"SKEIN_PLUGINS__NETWORK__MODE=" + mode,
		"SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]",
		"SKEIN_METRICS__LISTEN=127.0.0.1:0",
		"SKEIN_METRICS__PPROF=true",
	}
	if t := os.Getenv("TMPDIR"); t != "" {
		env = append(env, "TMPDIR="+t)
	}
	return env
}

var metricsLineRE = regexp.MustCompile(`msg="metrics serving" addr=(\S+)`)

// startAgent runs `skein run` on dir with the plugins in mode and waits
// until its client API answers.
func startAgent(ctx context.Context, bin, dir, mode string) (*agent, error) {
	a := &agent{bin: bin, dir: dir, mode: mode}
	cmd := exec.Command(bin, "run", "--data-dir", dir, "--log-level", "info")
	cmd.Env = agentEnv(mode)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start skein run: %w", err)
	}
	a.cmd = cmd
	a.lines = newLines(stderr)
	if _, err := a.lines.wait(ctx, "node running", 60*time.Second); err != nil {
		a.kill()
		return nil, fmt.Errorf("node %s (%s): %w\n%s", dir, mode, err, a.lines.tail(20))
	}
	if m := metricsLineRE.FindStringSubmatch(a.lines.find(`msg="metrics serving"`)); m != nil {
		a.metricsAddr = m[1]
	}
	if a.cl, err = client.Dial(dir); err != nil {
		a.kill()
		return nil, err
	}
	acct, err := a.cl.Account.Get(ctx, &apiv1.GetAccountRequest{})
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("node %s: account: %w", dir, err)
	}
	for _, ad := range acct.GetAddrs() {
		if strings.Contains(ad, "/ip4/127.0.0.1/tcp/") {
			a.addr = ad
			break
		}
	}
	if a.addr == "" && len(acct.GetAddrs()) > 0 {
		a.addr = acct.GetAddrs()[0]
	}
	a.ready = time.Now()
	return a, nil
}

// pid is the node process.
func (a *agent) pid() int { return a.cmd.Process.Pid }

// stop stops the node with SIGTERM and waits (killing it after 30 s).
func (a *agent) stop() error {
	if a == nil || a.cmd == nil || a.cmd.ProcessState != nil {
		return nil
	}
	if a.cl != nil {
		a.cl.Close()
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("node %s exited: %w\n%s", a.dir, err, a.lines.tail(20))
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
		return fmt.Errorf("node %s: not stopped 30s after SIGTERM; killed", a.dir)
	}
}

func (a *agent) kill() {
	if a.cmd != nil && a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	}
}

// connect dials other from a and waits until both see each other.
func (a *agent) connect(ctx context.Context, other *agent) error {
	if _, err := a.cl.Peers.Connect(ctx, &apiv1.ConnectPeerRequest{Addr: other.addr}); err != nil {
		return fmt.Errorf("connect %s: %w", other.addr, err)
	}
	return nil
}

// metrics scrapes the node's /metrics.
func (a *agent) metrics(ctx context.Context) (map[string]float64, error) {
	if a.metricsAddr == "" {
		return nil, errors.New("node serves no metrics")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// pair is two nodes, a and b, connected, both members of one group a
// created.
type pair struct {
	a, b  *agent
	group string
}

// newPair initialises and starts two nodes under dir in mode, connects
// them and makes them members of one group.
func newPair(ctx context.Context, bin, dir, mode string) (*pair, error) {
	p := &pair{}
	var err error
	for i, name := range []string{"a", "b"} {
		d := filepath.Join(dir, name)
		if err := initAgent(ctx, bin, d); err != nil {
			p.close()
			return nil, err
		}
		ag, err := startAgent(ctx, bin, d, mode)
		if err != nil {
			p.close()
			return nil, err
		}
		if i == 0 {
			p.a = ag
		} else {
			p.b = ag
		}
	}
	if err = p.b.connect(ctx, p.a); err != nil {
		p.close()
		return nil, err
	}
	g, err := p.a.cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "bench"})
	if err != nil {
		p.close()
		return nil, err
	}
	p.group = g.GetId()
	inv, err := p.a.cl.Groups.Invite(ctx, &apiv1.InviteRequest{Group: p.group})
	if err != nil {
		p.close()
		return nil, err
	}
	if _, err := p.b.cl.Groups.Join(ctx, &apiv1.JoinGroupRequest{Token: inv.GetToken(), Name: "bench"}); err != nil {
		p.close()
		return nil, fmt.Errorf("join: %w", err)
	}
	// a shares its sending chain with b once it applied b's join.
	if err := waitFor(ctx, 60*time.Second, "a knows b joined", func() bool {
		ms, err := p.a.cl.Groups.Members(ctx, &apiv1.MembersRequest{Group: p.group})
		return err == nil && len(ms.GetMembers()) == 2
	}); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *pair) close() {
	if p == nil {
		return
	}
	for _, a := range []*agent{p.a, p.b} {
		if a != nil {
			if err := a.stop(); err != nil {
				a.kill()
			}
		}
	}
}

// waitFor polls cond every 20 ms until it holds, ctx ends or d passes.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting until %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// lines collects the stderr lines of a node.
type lines struct {
	mu    sync.Mutex
	all   []string
	added chan struct{}
}

func newLines(r io.Reader) *lines {
	l := &lines{added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			if len(l.all) > 10000 {
				l.all = l.all[len(l.all)-5000:]
			}
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *lines) find(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.all {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func (l *lines) wait(ctx context.Context, s string, d time.Duration) (string, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if line := l.find(s); line != "" {
			return line, nil
		}
		select {
		case <-l.added:
		case <-t.C:
			return "", fmt.Errorf("no %q on stderr after %s", s, d)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (l *lines) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all[max(0, len(l.all)-n):], "\n")
}
