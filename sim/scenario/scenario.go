package scenario

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// ErrInvalid is matched (errors.Is) by every *InvalidError.
var ErrInvalid = errors.New("invalid scenario")

// Problem is one thing wrong with a scenario file.
type Problem struct {
	// Source is the file (or "--sweep" for an override).
	Source string
	// Line is the line in Source, 0 when unknown.
	Line int
	// Key is the dotted key, e.g. "links.default.loss" or "traffic[0].from".
	Key string
	// Message says what is wrong and, where it helps, what to do.
	Message string
}

// String formats the problem as "scenario FILE:LINE: KEY: MESSAGE".
func (p Problem) String() string {
	src := p.Source
	if p.Line > 0 {
		src = fmt.Sprintf("%s:%d", src, p.Line)
	}
	if p.Key == "" {
		return "scenario " + src + ": " + p.Message
	}
	return "scenario " + src + ": " + p.Key + ": " + p.Message
}

// InvalidError lists every problem found, in file order.
type InvalidError struct{ Problems []Problem }

// Error returns one problem per line.
func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports that an *InvalidError matches ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Names of the merge orders (core/log's built-in Orders) and crypto
// suites (core/crypto's built-in Suites) a scenario can pick (see
// Log.Merge and Crypto.Suite).
const (
	// MergeLamport: Lamport time, then writer key, then CID (the default).
	MergeLamport = "lamport"
	// MergeLamportCID: Lamport time, then CID (no writer favoured).
	MergeLamportCID = "lamport-cid"
	// SuiteDefault is XChaCha20-Poly1305 with X25519 and HKDF-SHA256.
	SuiteDefault = "xchacha20poly1305-x25519-hkdfsha256"
	// SuiteAESGCM is AES-256-GCM with X25519 and HKDF-SHA256.
	SuiteAESGCM = "aes256gcm-x25519-hkdfsha256"
)

// Scenario is one experiment: nodes, the links between them, groups,
// traffic, churn and partitions, all on a timeline from the moment the
// groups have formed (t = 0).
type Scenario struct {
	// Name labels outputs (default: the file name without extension).
	Name string `yaml:"name"`
	// Seed drives every random choice: message bodies, send offsets,
	// picks of churned nodes, link loss and jitter (default 1).
	Seed uint64 `yaml:"seed"`
	// Nodes is how many nodes run, named n0000, n0001, ... as package
	// sim names them.
	Nodes int `yaml:"nodes"`
	// Degree is how many peers each node connects to (plus a ring that
	// keeps the graph connected). 0: package sim's default (every pair up
	// to 20 nodes, else 8); -1: every pair.
	Degree int `yaml:"degree"`
	// Regions assigns nodes to named regions, for links by region and
	// partitions by region. A node is in at most one region.
	Regions map[string]Selector `yaml:"regions"`
	// Links sets the link model: a default, then by region pair, then by
	// node pair (each later, more specific rule wins).
	Links Links `yaml:"links"`
	// Groups lists the groups; every group's members join through an
	// invitation before t = 0. Default: one group "main" of all nodes.
	Groups []Group `yaml:"groups"`
	// Traffic lists who sends what when.
	Traffic []Traffic `yaml:"traffic"`
	// Churn lists nodes going offline and coming back.
	Churn []Churn `yaml:"churn"`
	// Partitions lists network splits and their heals.
	Partitions []Partition `yaml:"partitions"`
	// Run bounds the run.
	Run Run `yaml:"run"`
	// Replication tunes the replication of every node.
	Replication Replication `yaml:"replication"`
	// Log picks the log's parameters.
	Log Log `yaml:"log"`
	// Crypto picks the crypto suite.
	Crypto Crypto `yaml:"crypto"`
}

// Link is the model of one link, in both directions.
type Link struct {
	// Latency is the one-way delay.
	Latency time.Duration `yaml:"latency"`
	// Jitter adds a uniform random delay in [0, jitter) to each message.
	Jitter time.Duration `yaml:"jitter"`
	// Loss is the probability in [0, 1] that a pubsub message is lost
	// (block fetches and direct requests are reliable, as over TCP).
	Loss float64 `yaml:"loss"`
	// Bandwidth is the link's rate in bytes per second ("1MiB"); 0 is
	// unlimited.
	Bandwidth ByteSize `yaml:"bandwidth"`
}

// Links is the link model of a scenario.
type Links struct {
	// Default applies between nodes no rule below names.
	Default Link `yaml:"default"`
	// Regions sets the link between two regions (or inside one: the same
	// name twice).
	Regions []RegionLink `yaml:"regions"`
	// Pairs sets the link between every node of one selector and every
	// node of the other.
	Pairs []PairLink `yaml:"pairs"`
}

// RegionLink is a link model between two regions.
type RegionLink struct {
	Between []string `yaml:"between"`
	Link    `yaml:",inline"`
}

// PairLink is a link model between the nodes of two selectors.
type PairLink struct {
	Between []Selector `yaml:"between"`
	Link    `yaml:",inline"`
}

// Group is a group and its members.
type Group struct {
	// Name is how traffic names the group.
	Name string `yaml:"name"`
	// Members selects the members (default: all nodes). The first member
	// creates the group and invites the others.
	Members Selector `yaml:"members"`
}

// Traffic is a stream of messages from some members of a group: each
// sender sends Count messages of Size bytes, one every Every, the first
// at Start plus a per-sender offset in [0, Every) drawn from the seed.
type Traffic struct {
	Group string        `yaml:"group"`
	From  Selector      `yaml:"from"`
	Start time.Duration `yaml:"start"`
	Every time.Duration `yaml:"every"`
	Count int           `yaml:"count"`
	Size  ByteSize      `yaml:"size"`
}

// Churn takes nodes offline at Offline and back online at Online (0:
// they stay offline). Pick > 0 chooses that many of the selected nodes
// at random (from the seed).
type Churn struct {
	Nodes   Selector      `yaml:"nodes"`
	Pick    int           `yaml:"pick"`
	Offline time.Duration `yaml:"offline"`
	Online  time.Duration `yaml:"online"`
}

// Partition splits the network at At into Sides (nodes in no side form
// one more side) and heals it at Heal (0: never).
type Partition struct {
	At    time.Duration `yaml:"at"`
	Heal  time.Duration `yaml:"heal"`
	Sides []Selector    `yaml:"sides"`
}

// Run bounds a run.
type Run struct {
	// SettleTimeout is how long the run waits, after the last event, for
	// every group member that is up to hold every message (default 60s).
	SettleTimeout time.Duration `yaml:"settle_timeout"`
	// SetupTimeout bounds building the nodes and forming the groups
	// (default 10m).
	SetupTimeout time.Duration `yaml:"setup_timeout"`
}

// Replication tunes every node's replication.
type Replication struct {
	// AntiEntropy is the interval of the periodic head exchange that
	// repairs lost announcements. Default: package sim's, which grows with
	// N (N seconds, at least 1s) so that a thousand nodes do not spend the
	// machine on it; a node's own default is 10s.
	AntiEntropy time.Duration `yaml:"anti_entropy"`
	// Reexchange lists the times after a peer connects at which heads
	// are exchanged with it again, increasing (a node's default: 300ms
	// and 3s); an empty list: none. Scale them with the link latency.
	Reexchange *[]time.Duration `yaml:"reexchange"`
	// BulkRetry is how long a peer whose bulk fetch failed is asked for
	// single blocks before bulk is tried again (default 1m).
	BulkRetry time.Duration `yaml:"bulk_retry"`
	// FetchTimeout is how long a join waits with no block arriving
	// before it gives up until the next anti-entropy round (default 30s).
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// RequestTimeout bounds one direct request: a head exchange, a
	// proof, a bulk fetch (default 10s).
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Log picks the log's parameters (core/log options).
type Log struct {
	// Merge names the total order of every group's message log:
	// "lamport" (Lamport time, then writer key, then CID; the default) or
	// "lamport-cid" (Lamport time, then CID). It decides how concurrent
	// messages are listed; the metadata log keeps "lamport", which the
	// membership protocol is defined over.
	Merge string `yaml:"merge"`
	// AppendRefs is how many skip pointers each entry carries (default 3).
	AppendRefs *int `yaml:"append_refs"`
	// MaxNext bounds how many heads one entry merges (default 64).
	MaxNext int `yaml:"max_next"`
	// JoinParallelism bounds the blocks one join fetches at once (default 32).
	JoinParallelism int `yaml:"join_parallelism"`
}

// Crypto picks the crypto suite.
type Crypto struct {
	// Suite names the crypto suite every group seals with and every
	// replicator seals announcements with: SuiteDefault
	// ("xchacha20poly1305-x25519-hkdfsha256") or SuiteAESGCM
	// ("aes256gcm-x25519-hkdfsha256").
	Suite string `yaml:"suite"`
}

// Override sets one dotted key to a YAML value before decoding, as
// --sweep nodes=100 does.
type Override struct {
	Key   string
	Value string
}

// Load reads and validates a scenario file, with overrides applied.
func Load(path string, overrides ...Override) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	name := path
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".yaml"), ".yml")
	return Parse(path, data, name, overrides...)
}

// Parse decodes and validates a scenario from data; source names it in
// problems and defaultName is its name when it sets none.
func Parse(source string, data []byte, defaultName string, overrides ...Override) (*Scenario, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &InvalidError{[]Problem{{Source: source, Message: "not YAML: " + err.Error()}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == 0 { // empty file
		root = &yaml.Node{Kind: yaml.MappingNode}
	}
	d := &decoder{source: source}
	for _, o := range overrides {
		if err := override(root, o); err != nil {
			d.problems = append(d.problems, Problem{Source: "--sweep", Key: o.Key, Message: err.Error()})
		}
	}
	s := &Scenario{}
	d.decode("", root, reflectValue(s))
	if len(d.problems) > 0 {
		return nil, &InvalidError{d.problems}
	}
	s.defaults(defaultName)
	if ps := s.validate(source); len(ps) > 0 {
		return nil, &InvalidError{ps}
	}
	return s, nil
}

func (s *Scenario) defaults(name string) {
	if s.Name == "" {
		s.Name = name
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	if len(s.Groups) == 0 {
		s.Groups = []Group{{Name: "main"}}
	}
	for i := range s.Groups {
		if s.Groups[i].Members.empty() {
			s.Groups[i].Members = all()
		}
	}
	for i := range s.Traffic {
		t := &s.Traffic[i]
		if t.Group == "" && len(s.Groups) == 1 {
			t.Group = s.Groups[0].Name
		}
		if t.Count == 0 {
			t.Count = 1
		}
		if t.Size == 0 {
			t.Size = 200
		}
	}
	if s.Run.SettleTimeout == 0 {
		s.Run.SettleTimeout = 60 * time.Second
	}
	if s.Run.SetupTimeout == 0 {
		s.Run.SetupTimeout = 10 * time.Minute
	}
	if s.Log.Merge == "" {
		s.Log.Merge = MergeLamport
	}
	if s.Crypto.Suite == "" {
		s.Crypto.Suite = SuiteDefault
	}
}

// override sets the dotted key under root to the YAML scalar value,
// creating mappings on the way.
func override(root *yaml.Node, o Override) error {
	if o.Key == "" {
		return errors.New("empty key")
	}
	var val yaml.Node
	if err := yaml.Unmarshal([]byte(o.Value), &val); err != nil || len(val.Content) != 1 {
		return fmt.Errorf("value %q is not one YAML value", o.Value)
	}
	n := root
	parts := strings.Split(o.Key, ".")
	for i, p := range parts {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping", strings.Join(parts[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, next)
		}
		if i == len(parts)-1 {
			*next = *val.Content[0]
		}
		n = next
	}
	return nil
}
