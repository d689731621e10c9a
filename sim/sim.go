package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/internal/sigcache"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
)

// Defaults of Config.
const (
	// DefaultAntiEntropy is the replicators' shortest anti-entropy period
	// in a simulation (a node's default is 10 s); see Config.AntiEntropy.
	DefaultAntiEntropy = time.Second
	// AntiEntropyPerNode lengthens the default anti-entropy period with
	// the cluster's size: every node publishes a digest of each log each
	// period and every member receives it, N² deliveries per period in
	// one process, while announcements and the mesh's gossip carry the
	// group's traffic. A period of N seconds keeps the digests' cost
	// linear in N (2N deliveries a second for one group), which at 1,000
	// nodes is what leaves the CPU to the group.
	AntiEntropyPerNode = time.Second
	// DefaultJoinParallelism bounds the joins running at once in NewGroup.
	DefaultJoinParallelism = 64
	// FullMeshLimit: a cluster of at most this many nodes connects every
	// pair by default; a larger one connects each node to Degree others.
	FullMeshLimit = 20
	// DefaultDegree is the connections each node opens in a larger
	// cluster (plus a ring that keeps the graph connected).
	DefaultDegree = 8
	// VerifyCachePerNode sizes the process's cache of verified
	// signatures, which the in-process nodes share, per node.
	VerifyCachePerNode = 64
	// ParallelJoins is each node's bound on the joins of one log running
	// at once (replication.WithParallelJoins).
	ParallelJoins = 16
	// InternPerNode sizes the process's tables of shared decoded CIDs
	// and entries (core/log's SetCIDInternSize, SetEntryInternSize), per
	// node.
	InternPerNode = 64
)

// ErrClosed is returned by calls on a closed Cluster.
var ErrClosed = errors.New("sim: cluster closed")

// Config describes a cluster. The zero value is a valid empty cluster.
type Config struct {
	// Nodes is how many nodes New starts (more with AddNodes).
	Nodes int
	// Link is the link between every two nodes (default: no latency, no
	// loss). Network options may override it per pair.
	Link simnet.Link
	// Seed seeds the links' loss and jitter and the connection graph
	// (default 1).
	Seed uint64
	// Degree: each node connects to Degree others chosen by Seed, plus
	// its neighbours on a ring. 0: every pair is connected while the
	// cluster has at most FullMeshLimit nodes, else DefaultDegree. A
	// negative Degree connects every pair whatever the size.
	Degree int
	// Network are extra simnet options (after the link and seed).
	Network []simnet.Option
	// AntiEntropy is the replicators' anti-entropy period (default
	// Nodes × AntiEntropyPerNode, at least DefaultAntiEntropy: 100 s for
	// 100 nodes, 1,000 s for 1,000).
	AntiEntropy time.Duration
	// Replication are extra replicator options for every node.
	Replication []replication.Option
	// GroupOptions are passed to every group every node opens (e.g.
	// group.WithLogOptions to tune the logs).
	GroupOptions []group.Option
	// Dir holds the nodes' keystores; "" makes a temporary directory
	// (under /dev/shm where it exists: keystores fsync each save) that
	// Close removes.
	Dir string
	// Logger receives every node's log, scoped by node; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called as long operations advance, one call
	// at a time; it must not block.
	Progress func(Progress)
	// JoinParallelism bounds concurrent joins in NewGroup (default
	// DefaultJoinParallelism).
	JoinParallelism int
}

// Progress reports how far a long operation got.
type Progress struct {
	// Phase: "nodes", "invite", "join", "settle", "deliver", "remove",
	// "close".
	Phase   string
	Done    int
	Total   int
	Elapsed time.Duration
	// Detail says what the operation waits for, when it knows (settle:
	// the first member not settled and what it lacks).
	Detail string
}

// Cluster is a set of simulated nodes over one simnet.Network. It is safe
// for concurrent use.
type Cluster struct {
	cfg     Config
	net     *simnet.Network
	dir     string
	tempDir bool
	ctx     context.Context
	cancel  context.CancelFunc
	rng     *rand.Rand

	progressMu sync.Mutex // one Progress call at a time

	mu      sync.Mutex
	closed  bool
	nodes   []*Node
	groups  []*Group
	nextGrp int
}

// Node is one simulated node: a messenger over its simnet node, an
// in-memory store and a keystore.
type Node struct {
	// ID is the node's peer ID on the simulated network.
	ID string
	// Messenger is the node's messaging service (every messenger call
	// works on it).
	Messenger *messenger.Messenger
	// Net is the node's simulated network.
	Net *simnet.Node

	ks        *crypto.Keystore
	sent      atomic.Uint64
	delivered atomic.Uint64
}

// NodeStats counts one node's activity.
type NodeStats struct {
	ID string
	// Sent: messages this node sent through Group.Send; Delivered:
	// messages delivered to this node in the cluster's groups (its own
	// included).
	Sent, Delivered uint64
	// Network is the node's simulated traffic.
	Network simnet.NodeStats
}

// Stats returns the node's counters.
func (n *Node) Stats() NodeStats {
	return NodeStats{ID: n.ID, Sent: n.sent.Load(), Delivered: n.delivered.Load(), Network: n.Net.Stats()}
}

// New starts a cluster of cfg.Nodes nodes, connected as cfg.Degree says.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.AntiEntropy <= 0 {
		cfg.AntiEntropy = max(DefaultAntiEntropy, time.Duration(cfg.Nodes)*AntiEntropyPerNode)
	}
	if cfg.JoinParallelism <= 0 {
		cfg.JoinParallelism = DefaultJoinParallelism
	}
	if cfg.Nodes < 0 {
		return nil, fmt.Errorf("sim: negative node count %d", cfg.Nodes)
	}
	c := &Cluster{cfg: cfg, dir: cfg.Dir, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	if c.dir == "" {
		// tmpfs where there is one: keystores fsync every save.
		base := ""
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			base = "/dev/shm"
		}
		d, err := os.MkdirTemp(base, "skein-sim-*")
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		c.dir, c.tempDir = d, true
	}
	// The nodes share the process's cache of verified signatures: an
	// entry or certificate one node verified is not verified again by
	// the others (see docs/experiments.md).
	if want := VerifyCachePerNode * cfg.Nodes; want > sigcache.Size() {
		sigcache.SetSize(want)
	}
	// And one copy of each decoded entry and link (a CID): every node
	// holds the same metadata entries.
	if want := InternPerNode * cfg.Nodes; want > log.CIDInternSize() {
		log.SetCIDInternSize(want)
	}
	if want := InternPerNode * cfg.Nodes; want > log.EntryInternSize() {
		log.SetEntryInternSize(want)
	}
	// And one copy of each parsed device certificate.
	if want := InternPerNode * cfg.Nodes; want > crypto.CertificateInternSize() {
		crypto.SetCertificateInternSize(want)
	}
	opts := append([]simnet.Option{simnet.WithSeed(cfg.Seed), simnet.WithDefaultLink(cfg.Link)}, cfg.Network...)
	c.net = simnet.New(opts...)
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if _, err := c.AddNodes(ctx, cfg.Nodes); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Network returns the simulated network (partitions, links, stats).
func (c *Cluster) Network() *simnet.Network { return c.net }

// Nodes returns the cluster's nodes in the order they were added.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Node returns the i-th node.
func (c *Cluster) Node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Len returns the number of nodes.
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

func (c *Cluster) progress(phase string, done, total int, start time.Time) {
	c.progressDetail(phase, done, total, start, "")
}

func (c *Cluster) progressDetail(phase string, done, total int, start time.Time, detail string) {
	if c.cfg.Progress != nil {
		c.progressMu.Lock()
		defer c.progressMu.Unlock()
		c.cfg.Progress(Progress{Phase: phase, Done: done, Total: total, Elapsed: time.Since(start), Detail: detail})
	}
}

// AddNodes starts k more nodes and connects them (see Config.Degree).
func (c *Cluster) AddNodes(ctx context.Context, k int) ([]*Node, error) {
	start := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	first := len(c.nodes)
	c.mu.Unlock()
	added := make([]*Node, 0, k)
	for i := range k {
		n, err := c.startNode(ctx, fmt.Sprintf("n%04d", first+i))
		if err != nil {
			return added, err
		}
		added = append(added, n)
		c.mu.Lock()
		c.nodes = append(c.nodes, n)
		c.mu.Unlock()
		if (i+1)%50 == 0 || i+1 == k {
			c.progress("nodes", i+1, k, start)
		}
	}
	c.connect(first)
	return added, nil
}

func (c *Cluster) startNode(ctx context.Context, id string) (*Node, error) {
	nd, err := c.net.AddNode(id)
	if err != nil {
		return nil, fmt.Errorf("sim: add node %s: %w", id, err)
	}
	ks, err := crypto.OpenKeystore(filepath.Join(c.dir, id))
	if err != nil {
		return nil, fmt.Errorf("sim: node %s: %w", id, err)
	}
	logger := slog.New(slog.DiscardHandler)
	if c.cfg.Logger != nil {
		logger = c.cfg.Logger.With("node", id)
	}
	ropts := append([]replication.Option{
		// Every simulated node is honest and simnet never forwards what
		// it did not get from a node (see simnet's PubsubValidated).
		replication.WithPubsubValidated(true),
		replication.WithAntiEntropyInterval(c.cfg.AntiEntropy),
		// Peers are found by the connection graph, not a DHT.
		replication.WithRendezvousInterval(0),
		// A group of hundreds hears announcements through many relays,
		// which may not hold yet what they forwarded: with 4 joins a log
		// (a node's default), a few stalled ones held up everything
		// behind them until the fetch timeout (docs/performance.md).
		replication.WithParallelJoins(ParallelJoins),
	}, c.cfg.Replication...)
	m, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: newShortKeys(memstore.New()), Network: nd,
		Replication: ropts, Logger: logger, GroupOptions: c.cfg.GroupOptions})
	if err != nil {
		ks.Close()
		return nil, fmt.Errorf("sim: node %s: %w", id, err)
	}
	return &Node{ID: id, Messenger: m, Net: nd, ks: ks}, nil
}

// connect links the nodes from index first on with the earlier ones.
func (c *Cluster) connect(first int) {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	n := len(nodes)
	if first >= n {
		return
	}
	deg := c.cfg.Degree
	if deg < 0 || (deg == 0 && n <= FullMeshLimit) || (deg > 0 && deg >= n-1) {
		c.net.ConnectAll()
		return
	}
	if deg == 0 {
		deg = DefaultDegree
	}
	var pairs [][2]string
	for i := first; i < n; i++ {
		if i > 0 {
			pairs = append(pairs, [2]string{nodes[i].ID, nodes[i-1].ID}) // ring
		}
		for range deg - 1 {
			j := c.rng.IntN(n)
			if j != i {
				pairs = append(pairs, [2]string{nodes[i].ID, nodes[j].ID})
			}
		}
	}
	if n > 2 {
		pairs = append(pairs, [2]string{nodes[n-1].ID, nodes[0].ID})
	}
	c.net.ConnectPairs(pairs)
}

// Stats returns every node's counters, in node order.
func (c *Cluster) Stats() []NodeStats {
	nodes := c.Nodes()
	out := make([]NodeStats, len(nodes))
	for i, n := range nodes {
		out[i] = n.Stats()
	}
	return out
}

// Close stops every node (concurrently) and the network, and removes the
// temporary directory. It is idempotent.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	nodes := c.nodes
	c.mu.Unlock()
	start := time.Now()
	c.cancel() // ends the groups' subscriptions
	var errs []error
	var emu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4*runtime.GOMAXPROCS(0))
	var done atomic.Int64
	for _, n := range nodes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := errors.Join(n.Messenger.Close(), n.ks.Close())
			if err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("close %s: %w", n.ID, err))
				emu.Unlock()
			}
			if d := done.Add(1); d%100 == 0 {
				c.progress("close", int(d), len(nodes), start)
			}
		})
	}
	wg.Wait()
	errs = append(errs, c.net.Close())
	if c.tempDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}
