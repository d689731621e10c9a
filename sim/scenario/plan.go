package scenario

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxNodes bounds Scenario.Nodes.
const MaxNodes = 100_000

// MaxSends bounds the messages one timeline sends (all traffic entries).
const MaxSends = 1_000_000

// MaxMessageSize bounds Traffic.Size (the log's default entry limit is
// 1 MiB, and an entry carries more than the body).
const MaxMessageSize = 512 << 10

func reflectValue(s *Scenario) reflect.Value { return reflect.ValueOf(s).Elem() }

// EventKind says what an Event does.
type EventKind int

// The kinds of event.
const (
	EventSend EventKind = iota + 1
	EventOffline
	EventOnline
	EventPartition
	EventHeal
)

var eventNames = map[EventKind]string{EventSend: "send", EventOffline: "offline", EventOnline: "online",
	EventPartition: "partition", EventHeal: "heal"}

// String names the kind.
func (k EventKind) String() string { return eventNames[k] }

// Event is one thing that happens at a time of the run.
type Event struct {
	// At is the time from the start of the timeline (groups formed).
	At   time.Duration
	Kind EventKind
	// Node is the sender (send) or the node going offline or online.
	Node int
	// Group is the index in Plan.Groups of a send's group.
	Group int
	// Seq numbers sends from 0 in timeline order; Size is the body size.
	Seq, Size int
	// Sides are the sides of a partition (node indices).
	Sides [][]int
}

// Group is a group as planned: its members, the first of which creates it.
type PlannedGroup struct {
	Name    string
	Members []int
}

// PairRule is a link model between every node of A and every node of B.
type PairRule struct {
	A, B []int
	Link Link
}

// Plan is a scenario resolved into node indices and a sorted timeline.
// The same scenario (and seed) always gives the same plan.
type Plan struct {
	Scenario *Scenario
	// Nodes are the node names, by index.
	Nodes []string
	// Region is each node's region ("" for none).
	Region []string
	// RegionLinks maps a region pair (in either order) to its link.
	RegionLinks map[[2]string]Link
	// PairRules are the pair links, later ones winning.
	PairRules []PairRule
	Groups    []PlannedGroup
	// Events is the timeline, sorted by time (ties in file order: partitions,
	// churn, traffic).
	Events []Event
	// Sends is how many messages the timeline sends.
	Sends int
	// End is the time of the last event.
	End time.Duration
}

// Plan resolves the scenario.
func (s *Scenario) Plan() (*Plan, error) {
	p, ps := s.plan("scenario")
	if len(ps) > 0 {
		return nil, &InvalidError{ps}
	}
	return p, nil
}

// LinkBetween returns the link model between nodes a and b: the last pair
// rule naming both, else their regions' link, else the default.
func (p *Plan) LinkBetween(a, b int) Link {
	for i := len(p.PairRules) - 1; i >= 0; i-- {
		r := p.PairRules[i]
		if (has(r.A, a) && has(r.B, b)) || (has(r.A, b) && has(r.B, a)) {
			return r.Link
		}
	}
	if l, ok := p.RegionLinks[regionPair(p.Region[a], p.Region[b])]; ok {
		return l
	}
	return p.Scenario.Links.Default
}

func has(sorted []int, v int) bool {
	_, ok := slices.BinarySearch(sorted, v)
	return ok
}

func regionPair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Body returns the deterministic body of send seq of the given size: a tag
// "skein-sim <seq> " naming the message, then bytes from the seed. A size
// below the tag's length gives the tag alone.
func Body(seed uint64, seq, size int) []byte {
	b := []byte("skein-sim " + strconv.Itoa(seq) + " ")
	r := rand.New(rand.NewPCG(seed, uint64(seq)|1<<63))
	for len(b) < size {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	if len(b) > size && size >= len("skein-sim "+strconv.Itoa(seq)+" ") {
		b = b[:size]
	}
	return b
}

// BodySeq returns the send number a Body names, or false.
func BodySeq(body []byte) (int, bool) {
	rest, ok := strings.CutPrefix(string(body[:min(len(body), 32)]), "skein-sim ")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, " ")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil && n >= 0
}

// Random streams, one per purpose, so adding traffic does not change
// which nodes churn picks.
const (
	streamChurn = iota + 1
	streamTraffic
)

func (s *Scenario) plan(source string) (*Plan, []Problem) {
	var ps []Problem
	bad := func(line int, key, format string, args ...any) {
		ps = append(ps, Problem{Source: source, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	if s.Nodes < 1 || s.Nodes > MaxNodes {
		bad(0, "nodes", "must be between 1 and %d, got %d (how many nodes run)", MaxNodes, s.Nodes)
		return nil, ps
	}
	p := &Plan{Scenario: s, Nodes: make([]string, s.Nodes), Region: make([]string, s.Nodes),
		RegionLinks: map[[2]string]Link{}}
	u := &universe{n: s.Nodes, names: map[string]int{}, regions: map[string][]int{}}
	for i := range p.Nodes {
		p.Nodes[i] = nodeName(i, s.Nodes)
		u.names[p.Nodes[i]] = i
	}
	resolve := func(key string, sel Selector) []int {
		idx, err := sel.resolve(u)
		if err != nil {
			bad(sel.line, key, "%v", err)
		}
		return idx
	}

	for _, r := range sortedNames(s.Regions) {
		key := "regions." + r
		if _, clash := u.names[r]; clash || r == "all" || r == "" {
			bad(s.Regions[r].line, key, "region name %q is taken by a node or a keyword; pick another", r)
			continue
		}
		for _, i := range resolve(key, s.Regions[r]) {
			if p.Region[i] != "" {
				bad(s.Regions[r].line, key, "node %s is already in region %q; a node is in one region", p.Nodes[i], p.Region[i])
				continue
			}
			p.Region[i] = r
			u.regions[r] = append(u.regions[r], i)
		}
	}

	checkLink := func(key string, l Link) {
		if l.Loss < 0 || l.Loss > 1 {
			bad(0, key+".loss", "must be in [0, 1], got %v", l.Loss)
		}
	}
	checkLink("links.default", s.Links.Default)
	for i, rl := range s.Links.Regions {
		key := fmt.Sprintf("links.regions[%d]", i)
		checkLink(key, rl.Link)
		if len(rl.Between) != 2 {
			bad(0, key+".between", "expected two region names (the same twice for links inside a region), got %d", len(rl.Between))
			continue
		}
		ok := true
		for _, r := range rl.Between {
			if _, known := s.Regions[r]; !known {
				bad(0, key+".between", "unknown region %q (regions: %s)", r, strings.Join(sortedNames(s.Regions), ", "))
				ok = false
			}
		}
		if ok {
			p.RegionLinks[regionPair(rl.Between[0], rl.Between[1])] = rl.Link
		}
	}
	for i, pl := range s.Links.Pairs {
		key := fmt.Sprintf("links.pairs[%d]", i)
		checkLink(key, pl.Link)
		if len(pl.Between) != 2 {
			bad(0, key+".between", "expected two selectors, got %d", len(pl.Between))
			continue
		}
		p.PairRules = append(p.PairRules, PairRule{A: resolve(key+".between[0]", pl.Between[0]),
			B: resolve(key+".between[1]", pl.Between[1]), Link: pl.Link})
	}

	groupIdx := map[string]int{}
	for i, g := range s.Groups {
		key := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			bad(0, key+".name", "required: traffic names the group by it")
		} else if _, dup := groupIdx[g.Name]; dup {
			bad(0, key+".name", "group %q is given twice", g.Name)
		}
		groupIdx[g.Name] = i
		p.Groups = append(p.Groups, PlannedGroup{Name: g.Name, Members: resolve(key+".members", g.Members)})
	}

	var events []Event
	var partEnds []time.Duration
	for i, pt := range s.Partitions {
		key := fmt.Sprintf("partitions[%d]", i)
		if pt.Heal != 0 && pt.Heal <= pt.At {
			bad(0, key+".heal", "must be after at (%s), got %s; 0 never heals", pt.At, pt.Heal)
		}
		if len(pt.Sides) == 0 {
			bad(0, key+".sides", "required: at least one side (the nodes in no side form another)")
		}
		for j, prevEnd := range partEnds {
			if prevEnd == 0 || pt.At < prevEnd {
				if pt.At >= s.Partitions[j].At {
					bad(0, key+".at", "starts before partitions[%d] heals; partitions must not overlap", j)
				}
			}
		}
		partEnds = append(partEnds, pt.Heal)
		seen := map[int]int{}
		var sides [][]int
		for j, side := range pt.Sides {
			idx := resolve(fmt.Sprintf("%s.sides[%d]", key, j), side)
			for _, n := range idx {
				if prev, dup := seen[n]; dup {
					bad(side.line, fmt.Sprintf("%s.sides[%d]", key, j), "node %s is also in side %d", p.Nodes[n], prev)
				}
				seen[n] = j
			}
			sides = append(sides, idx)
		}
		events = append(events, Event{At: pt.At, Kind: EventPartition, Sides: sides})
		if pt.Heal != 0 {
			events = append(events, Event{At: pt.Heal, Kind: EventHeal})
		}
	}

	churnRand := rand.New(rand.NewPCG(s.Seed, streamChurn))
	for i, c := range s.Churn {
		key := fmt.Sprintf("churn[%d]", i)
		if c.Nodes.empty() {
			bad(0, key+".nodes", "required: which nodes go offline")
			continue
		}
		idx := resolve(key+".nodes", c.Nodes)
		if c.Online != 0 && c.Online <= c.Offline {
			bad(0, key+".online", "must be after offline (%s), got %s; 0 stays offline", c.Offline, c.Online)
		}
		if c.Pick < 0 || c.Pick > len(idx) {
			bad(0, key+".pick", "must be between 0 and the %d selected nodes, got %d", len(idx), c.Pick)
			continue
		}
		if c.Pick > 0 {
			idx = slices.Clone(idx)
			churnRand.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			idx = idx[:c.Pick]
			slices.Sort(idx)
		}
		for _, n := range idx {
			events = append(events, Event{At: c.Offline, Kind: EventOffline, Node: n})
			if c.Online != 0 {
				events = append(events, Event{At: c.Online, Kind: EventOnline, Node: n})
			}
		}
	}

	trafficRand := rand.New(rand.NewPCG(s.Seed, streamTraffic))
	sends := 0
	for i, t := range s.Traffic {
		key := fmt.Sprintf("traffic[%d]", i)
		g, ok := groupIdx[t.Group]
		if !ok {
			bad(0, key+".group", "unknown group %q", t.Group)
			continue
		}
		if t.Count < 1 {
			bad(0, key+".count", "must be at least 1, got %d", t.Count)
			continue
		}
		if t.Count > 1 && t.Every == 0 {
			bad(0, key+".every", "required when count > 1: the interval between one sender's messages")
			continue
		}
		if t.Size > MaxMessageSize {
			bad(0, key+".size", "must be at most %s, got %s", ByteSize(MaxMessageSize), t.Size)
			continue
		}
		from := p.Groups[g].Members
		if !t.From.empty() {
			from = resolve(key+".from", t.From)
		}
		for _, n := range from {
			if !has(p.Groups[g].Members, n) {
				bad(t.From.line, key+".from", "node %s is not a member of group %q", p.Nodes[n], t.Group)
				break
			}
		}
		if sends += len(from) * t.Count; sends > MaxSends {
			bad(0, key+".count", "the traffic sends %d messages or more, above the limit of %d", sends, MaxSends)
			break
		}
		for _, n := range from {
			var offset time.Duration
			if t.Every > 0 {
				offset = time.Duration(trafficRand.Int64N(int64(t.Every)))
			}
			for k := range t.Count {
				events = append(events, Event{At: t.Start + offset + time.Duration(k)*t.Every, Kind: EventSend,
					Node: n, Group: g, Size: int(t.Size)})
			}
		}
	}

	switch s.Log.Merge {
	case MergeLamport, MergeLamportCID:
	default:
		bad(0, "log.merge", "%q is not a merge order: use %q (Lamport time, then writer key, then CID) or %q (Lamport time, then CID)", s.Log.Merge, MergeLamport, MergeLamportCID)
	}
	if r := s.Replication.Reexchange; r != nil {
		for i, d := range *r {
			if d <= 0 || i > 0 && d <= (*r)[i-1] {
				bad(0, fmt.Sprintf("replication.reexchange[%d]", i), "the times must be positive and increase, got %v", d)
				break
			}
		}
	}
	if r := s.Log.AppendRefs; r != nil && (*r < 0 || *r > 62) {
		bad(0, "log.append_refs", "must be in [0, 62], got %d", *r)
	}
	if s.Degree < -1 {
		bad(0, "degree", "must be -1 (every pair), 0 (the default) or a number of peers, got %d", s.Degree)
	}
	if s.Log.MaxNext < 0 {
		bad(0, "log.max_next", "must not be negative, got %d", s.Log.MaxNext)
	}
	if s.Log.JoinParallelism < 0 {
		bad(0, "log.join_parallelism", "must not be negative, got %d", s.Log.JoinParallelism)
	}
	switch s.Crypto.Suite {
	case SuiteDefault, SuiteAESGCM:
	default:
		bad(0, "crypto.suite", "%q is not a crypto suite: use %q or %q", s.Crypto.Suite, SuiteDefault, SuiteAESGCM)
	}
	if len(ps) > 0 {
		return nil, ps
	}

	slices.SortStableFunc(events, func(a, b Event) int { return cmp.Compare(a.At, b.At) })
	for i := range events {
		if events[i].Kind == EventSend {
			events[i].Seq = p.Sends
			p.Sends++
		}
		p.End = max(p.End, events[i].At)
	}
	p.Events = events
	return p, nil
}

func (s *Scenario) validate(source string) []Problem {
	_, ps := s.plan(source)
	return ps
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
