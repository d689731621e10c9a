package stranger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/replication"
)

var (
	buildOnce sync.Once
	binDir    string
	skeinBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// skeinBinary builds cmd/node once for the package.
func skeinBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "skein-stranger-e2e-")
		if buildErr != nil {
			return
		}
		skeinBin = filepath.Join(binDir, "skein")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
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

// logLevel is the log level of every node (SKEIN_E2E_LOG_LEVEL, default
// info).
var logLevel = func() string {
	if l := os.Getenv("SKEIN_E2E_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}()

// node is one `skein run` on loopback.
type node struct {
	name, dataDir string
	env           []string
	cmd           *exec.Cmd
	mu            sync.Mutex
	out           bytes.Buffer
	peerID        string
	addr          string // dial address, ending in /p2p/<peer id>
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNode runs `skein init` (default preset) and `skein run`, the
// network listening on a loopback port and bootstrapping to bootstrap.
func startNode(tb testing.TB, name string, bootstrap ...string) *node {
	tb.Helper()
	bin := skeinBinary(tb)
	n := &node{name: name, dataDir: filepath.Join(tb.TempDir(), name),
		env: []string{"HOME=" + tb.TempDir(), "TMPDIR=" + tb.TempDir(), "PATH=" + os.Getenv("PATH")}}
	if _, err := n.run("init", "--data-dir", n.dataDir); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	cfgPath := filepath.Join(n.dataDir, "skein.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		tb.Fatal(err)
	}
	const initBootstrap = "      bootstrap: []\n"
	if !bytes.Contains(cfg, []byte(initBootstrap)) {
		tb.Fatalf("%s: no %q line in the config skein init wrote", name, initBootstrap)
	}
	quoted := make([]string, len(bootstrap))
	for i, b := range bootstrap {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	port := freePort(tb)
	netCfg := fmt.Sprintf("      listen: [\"/ip4/127.0.0.1/tcp/%d\"]\n      bootstrap: [%s]\n", port, strings.Join(quoted, ", "))
	cfg = bytes.Replace(cfg, []byte(initBootstrap), []byte(netCfg), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		tb.Fatal(err)
	}
	n.cmd = exec.Command(bin, "run", "--data-dir", n.dataDir, "--log-level", logLevel)
	n.cmd.Env = n.env
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		once := sync.Once{}
		for sc.Scan() {
			n.mu.Lock()
			n.out.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
			if strings.Contains(sc.Text(), "node running") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	tb.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = n.cmd.Process.Kill()
			<-done
		}
	})
	select {
	case <-ready:
	case <-time.After(90 * time.Second):
		tb.Fatalf("%s: not running after 90s:\n%s", name, n.log())
	}
	var id struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	n.cliJSON(tb, &id, "id", "--json")
	n.peerID = id.PeerID
	n.addr = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id.PeerID)
	return n
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

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

func (n *node) cli(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := n.run(append(args, "--data-dir", n.dataDir)...)
	if err != nil {
		tb.Fatalf("%s: %v", n.name, err)
	}
	return out
}

func (n *node) cliJSON(tb testing.TB, v any, args ...string) {
	tb.Helper()
	out := n.cli(tb, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		tb.Fatalf("%s: skein %s: not JSON: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, not synchronising on time
	}
}

// observer records, per peer, every pubsub RPC the stranger receives.
type observer struct {
	mu   sync.Mutex
	subs map[peer.ID][]string // topics a peer told the stranger it subscribes to
	msgs map[peer.ID][]string // topics of messages a peer sent the stranger
	// grafts: topics a peer grafted the stranger into.
	grafts map[peer.ID][]string
}

func newObserver() *observer {
	return &observer{subs: map[peer.ID][]string{}, msgs: map[peer.ID][]string{}, grafts: map[peer.ID][]string{}}
}

func (o *observer) RecvRPC(rpc *pubsub.RPC) {
	o.mu.Lock()
	defer o.mu.Unlock()
	from := rpc.From()
	for _, s := range rpc.GetSubscriptions() {
		if s.GetSubscribe() {
			o.subs[from] = append(o.subs[from], s.GetTopicid())
		}
	}
	for _, m := range rpc.GetPublish() {
		o.msgs[from] = append(o.msgs[from], m.GetTopic())
	}
	for _, g := range rpc.GetControl().GetGraft() {
		o.grafts[from] = append(o.grafts[from], g.GetTopicID())
	}
}

func (o *observer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (o *observer) OnClosedOutboundStream(peer.ID)                       {}
func (o *observer) Join(string)                                          {}
func (o *observer) Leave(string)                                         {}
func (o *observer) Graft(peer.ID, string)                                {}
func (o *observer) Prune(peer.ID, string)                                {}
func (o *observer) ValidateMessage(*pubsub.Message)                      {}
func (o *observer) DeliverMessage(*pubsub.Message)                       {}
func (o *observer) RejectMessage(*pubsub.Message, string)                {}
func (o *observer) DuplicateMessage(*pubsub.Message)                     {}
func (o *observer) ThrottlePeer(peer.ID)                                 {}
func (o *observer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (o *observer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (o *observer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (o *observer) UndeliverableMessage(*pubsub.Message)                 {}

var _ pubsub.RawTracer = (*observer)(nil)

func (o *observer) seen(p peer.ID) (subs, msgs, grafts []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.subs[p]...), append([]string(nil), o.msgs[p]...), append([]string(nil), o.grafts[p]...)
}

// request sends one direct request over a stream of its own, framed as
// the network plugin frames them (uvarint length, bytes), and returns the
// answer, or an error if the peer reset the stream.
func request(ctx context.Context, h host.Host, to peer.ID, proto string, req []byte) ([]byte, error) {
	s, err := h.NewStream(ctx, to, protocol.ID(proto))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(req))), req...)); err != nil {
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(s)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > 4<<20 {
		return nil, fmt.Errorf("answer of %d bytes", n)
	}
	resp := make([]byte, n)
	_, err = io.ReadFull(br, resp)
	return resp, err
}

// TestStrangerLearnsNothing: two real `skein run` members of a group
// message each other while a libp2p host of our own, connected to one of
// them, plays the stranger. It speaks gossipsub, subscribes to the
// group's topic (as if it had learnt the topic's name), answers the proof
// protocol with random bytes and asks for heads and entries. It learns
// nothing: no subscription or message of the topic reaches it, it is never
// grafted into the topic's mesh, it is never asked for heads, and its
// heads and entries requests get the answers a log that does not exist
// gets.
func TestStrangerLearnsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs skein")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startNode(t, "a")
	b := startNode(t, "b", a.addr)

	var g struct {
		ID string `json:"id"`
	}
	a.cliJSON(t, &g, "group", "create", "club", "--json")
	var inv struct {
		Token string `json:"token"`
	}
	a.cliJSON(t, &inv, "group", "invite", "club", "--json")
	b.cli(t, "group", "join", inv.Token, "--name", "club", "--timeout", "60s", "--json")
	parsed, err := group.ParseInvitation(inv.Token)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := replication.DeriveTopicKeys(parsed.ReplicationKey[:])
	if err != nil {
		t.Fatal(err)
	}
	metaLog, msgLog := replication.LogIDFor(keys.Topic, "meta"), replication.LogIDFor(keys.Topic, "messages")

	// The stranger.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	obs := newObserver()
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithRawTracer(obs), pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		// Skein's messages carry no from/seqno: ids by content, as the plugin's.
		pubsub.WithMessageIdFn(func(m *pubsubpb.Message) string { s := sha256.Sum256(m.GetData()); return string(s[:]) }))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(keys.Topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	var asked sync.Mutex
	askedBy := map[string]int{}
	for _, proto := range []string{replication.HeadsProtocol, replication.EntriesProtocol} {
		h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
			asked.Lock()
			askedBy[proto]++
			asked.Unlock()
			_ = s.Reset()
		})
	}
	// Answers the proof protocol in shape, with random bytes.
	h.SetStreamHandler(protocol.ID(replication.ProofProtocol), func(s network.Stream) {
		defer s.Close()
		br := bufio.NewReader(s)
		n, err := binary.ReadUvarint(br)
		if err != nil || n > 1<<16 || n < 2 {
			_ = s.Reset()
			return
		}
		req := make([]byte, n)
		if _, err := io.ReadFull(br, req); err != nil {
			_ = s.Reset()
			return
		}
		var resp []byte
		switch req[1] {
		case 7: // hello: a random nonce
			resp = append([]byte{1, 8}, randomBytes(32)...)
		case 9: // tags: as many random tags
			count, k := binary.Uvarint(req[2+64:])
			resp = append([]byte{1, 10}, req[2+64:2+64+k]...)
			resp = append(resp, randomBytes(int(count)*32)...)
		}
		_, _ = s.Write(append(binary.AppendUvarint(nil, uint64(len(resp))), resp...))
	})
	info, err := peer.AddrInfoFromP2pAddr(ma.StringCast(a.addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}

	// The members talk while the stranger listens.
	bodies := []string{"first", "second", "third"}
	for _, body := range bodies {
		a.cli(t, "send", "club", body)
	}
	waitFor(t, "b to receive a's messages", 60*time.Second, func() bool {
		out := b.cli(t, "messages", "club", "--json")
		for _, body := range bodies {
			if !strings.Contains(out, fmt.Sprintf("%q", body)) {
				return false
			}
		}
		return true
	})
	b.cli(t, "send", "club", "reply")
	waitFor(t, "a to receive b's reply", 60*time.Second, func() bool {
		return strings.Contains(a.cli(t, "messages", "club", "--json"), `"reply"`)
	})

	// Heads and entries requests: the same answers as for a log that does
	// not exist.
	headsReq := func(ids ...replication.LogID) []byte {
		x := &replication.HeadsExchange{}
		for _, id := range ids {
			x.Logs = append(x.Logs, replication.LogHeads{Log: id})
		}
		sortLogs(x.Logs)
		raw, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	var nowhere replication.LogID
	copy(nowhere[:], randomBytes(len(nowhere)))
	real, err := request(ctx, h, info.ID, replication.HeadsProtocol, headsReq(metaLog, msgLog))
	if err != nil {
		t.Fatalf("heads request: %v", err)
	}
	fake, err := request(ctx, h, info.ID, replication.HeadsProtocol, headsReq(nowhere))
	if err != nil {
		t.Fatalf("heads request: %v", err)
	}
	if !bytes.Equal(real, fake) {
		t.Fatalf("a stranger tells the group's logs (%x) from a log that does not exist (%x)", real, fake)
	}
	if x, err := replication.DecodeHeadsExchange(real); err != nil || len(x.Logs) != 0 {
		t.Fatalf("the stranger was told heads: %+v %v", x, err)
	}
	for _, id := range []replication.LogID{msgLog, nowhere} {
		ereq, err := (&replication.EntriesRequest{Log: id, Want: []cid.Cid{fakeHead()}, MaxEntries: 10, MaxBytes: 1 << 20}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := request(ctx, h, info.ID, replication.EntriesProtocol, ereq); err == nil {
			t.Fatalf("entries request for log %s answered with %d bytes", id, len(resp))
		}
	}

	// Pubsub: nothing of the topic reached the stranger.
	subs, msgs, grafts := obs.seen(info.ID)
	for _, s := range subs {
		if s == keys.Topic {
			t.Fatal("a told the stranger it subscribes to the group's topic")
		}
	}
	if len(msgs) > 0 {
		t.Fatalf("a sent the stranger %d pubsub messages (topics %v)", len(msgs), msgs)
	}
	for _, g := range grafts {
		if g == keys.Topic {
			t.Fatal("a grafted the stranger into the group's mesh")
		}
	}
	nctx, ncancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if m, err := sub.Next(nctx); err == nil {
		t.Fatalf("the stranger received a message of the topic from %s", m.ReceivedFrom)
	}
	ncancel()
	for _, p := range topic.ListPeers() {
		if p == info.ID {
			t.Fatal("the stranger sees a as a peer of the topic")
		}
	}
	asked.Lock()
	defer asked.Unlock()
	if len(askedBy) != 0 {
		t.Fatalf("a asked the stranger: %v", askedBy)
	}
	if strings.Contains(a.log(), "panic") {
		t.Fatalf("a panicked:\n%s", a.log())
	}
}

// fakeHead returns a CID of the shape of a log entry's.
func fakeHead() cid.Cid {
	m, _ := mh.Sum(randomBytes(32), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.DagCBOR, m)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sortLogs(ls []replication.LogHeads) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && bytes.Compare(ls[j-1].Log[:], ls[j].Log[:]) > 0; j-- {
			ls[j-1], ls[j] = ls[j], ls[j-1]
		}
	}
}
