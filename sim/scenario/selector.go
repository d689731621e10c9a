package scenario

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Selector picks nodes. Written as one string or a list; each item, or
// each comma-separated part of a string, is one of:
//
//	all          every node
//	7            the node of index 7
//	0-9          indices 0 to 9, inclusive
//	0%-50%       the first half (half-open: 50%-100% is the other half),
//	             so a selector scales with --sweep nodes=...
//	n0007        a node by name (n and four digits)
//	eu           every node of a region
type Selector struct {
	items []string
	line  int
}

func all() Selector { return Selector{items: []string{"all"}} }

func (s Selector) empty() bool { return len(s.items) == 0 }

// String writes the selector back as one comma-separated string.
func (s Selector) String() string { return strings.Join(s.items, ",") }

func (s *Selector) decodeYAML(d *decoder, key string, n *yaml.Node) {
	s.line = n.Line
	add := func(v string) {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				s.items = append(s.items, p)
			}
		}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		add(n.Value)
	case yaml.SequenceNode:
		for i, it := range n.Content {
			if it.Kind != yaml.ScalarNode {
				d.problem(it, fmt.Sprintf("%s[%d]", key, i), "expected a node, range or region, got %s", describe(it))
				continue
			}
			add(it.Value)
		}
	default:
		d.problem(n, key, "expected nodes: \"all\", an index, a range \"0-9\" or \"0%%-50%%\", a node or region name, or a list of them; got %s", describe(n))
	}
	if len(s.items) == 0 {
		d.problem(n, key, "selects no node")
	}
}

// universe is what a selector resolves against.
type universe struct {
	n       int
	names   map[string]int
	regions map[string][]int
}

// resolve returns the selected node indices, ascending, without repeats.
func (s Selector) resolve(u *universe) ([]int, error) {
	set := map[int]bool{}
	for _, it := range s.items {
		idx, err := u.item(it)
		if err != nil {
			return nil, err
		}
		for _, i := range idx {
			set[i] = true
		}
	}
	out := make([]int, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out, nil
}

func (u *universe) item(it string) ([]int, error) {
	if it == "all" {
		return seq(0, u.n), nil
	}
	if i, ok := u.names[it]; ok {
		return []int{i}, nil
	}
	if r, ok := u.regions[it]; ok {
		return r, nil
	}
	if i, err := strconv.Atoi(it); err == nil {
		if i < 0 || i >= u.n {
			return nil, fmt.Errorf("node index %d out of range (nodes: %d)", i, u.n)
		}
		return []int{i}, nil
	}
	lo, hi, ok := strings.Cut(it, "-")
	if !ok {
		return nil, fmt.Errorf("%q is not a node, region, index or range (use all, 7, 0-9, 0%%-50%%, a node name such as %s, or a region)", it, nodeName(0, u.n))
	}
	if strings.HasSuffix(lo, "%") && strings.HasSuffix(hi, "%") {
		a, errA := strconv.ParseFloat(strings.TrimSuffix(lo, "%"), 64)
		b, errB := strconv.ParseFloat(strings.TrimSuffix(hi, "%"), 64)
		if errA != nil || errB != nil || a < 0 || b > 100 || a > b {
			return nil, fmt.Errorf("%q: percentages must be 0 <= a <= b <= 100", it)
		}
		return seq(int(a*float64(u.n)/100), int(b*float64(u.n)/100)), nil
	}
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	if errA != nil || errB != nil || a < 0 || a > b {
		return nil, fmt.Errorf("%q is not a range of indices a-b with 0 <= a <= b", it)
	}
	if b >= u.n {
		return nil, fmt.Errorf("range %q goes past the last node (%d); use a percentage range to scale with nodes", it, u.n-1)
	}
	return seq(a, b+1), nil
}

func seq(lo, hi int) []int {
	out := make([]int, 0, max(hi-lo, 0))
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// nodeName is the name of node i: "n" and i zero-padded to four digits,
// as package sim names its nodes.
func nodeName(i, _ int) string { return fmt.Sprintf("n%04d", i) }
