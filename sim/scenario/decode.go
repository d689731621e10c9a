package scenario

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/skein-p2p/skein/internal/bytesize"
)

// yamlDecoder is implemented by field types that read themselves from a
// YAML node (Selector, ByteSize); they report problems through d.
type yamlDecoder interface {
	decodeYAML(d *decoder, key string, n *yaml.Node)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	decoderType  = reflect.TypeFor[yamlDecoder]()
)

// decoder decodes a YAML node tree into a struct strictly, collecting every
// problem (unknown key, wrong type) with its dotted key and line.
type decoder struct {
	source   string
	problems []Problem
}

func (d *decoder) problem(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Source: d.source, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// fields maps the yaml tag of each field of t (flattening ",inline"
// embedded structs) to its index path.
func fields(t reflect.Type) (map[string][]int, []string) {
	idx := map[string][]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		name, opt, _ := strings.Cut(tag, ",")
		if opt == "inline" && f.Type.Kind() == reflect.Struct {
			sub, subNames := fields(f.Type)
			for k, p := range sub {
				idx[k] = append([]int{i}, p...)
			}
			names = append(names, subNames...)
			continue
		}
		idx[name] = []int{i}
		names = append(names, name)
	}
	return idx, names
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return n.Value
	}
	return "an unknown node"
}

// decode decodes n into the value dst points to.
func (d *decoder) decode(key string, n *yaml.Node, dst reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty key keeps its default
	}
	if dst.CanAddr() && dst.Addr().Type().Implements(decoderType) {
		dst.Addr().Interface().(yamlDecoder).decodeYAML(d, key, n)
		return
	}
	t := dst.Type()
	if t == durationType {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			if n.Kind == yaml.ScalarNode && n.Value == "0" {
				dst.SetInt(0)
				return
			}
			d.problem(n, key, "expected a duration such as 10s or 250ms, got %s", describe(n))
			return
		}
		v, err := time.ParseDuration(strings.TrimSpace(n.Value))
		if err != nil {
			d.problem(n, key, "not a duration: %q (use a number and a unit: 10s, 250ms, 1m)", n.Value)
			return
		}
		if v < 0 {
			d.problem(n, key, "must not be negative, got %s", n.Value)
			return
		}
		dst.SetInt(int64(v))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		v := reflect.New(t.Elem())
		d.decode(key, n, v.Elem())
		dst.Set(v)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.problem(n, key, "expected a mapping of keys, got %s", describe(n))
			return
		}
		idx, names := fields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			k := joinKey(key, kn.Value)
			if seen[kn.Value] {
				d.problem(kn, k, "key given twice")
				continue
			}
			seen[kn.Value] = true
			path, ok := idx[kn.Value]
			if !ok {
				d.problem(kn, k, "unknown key%s", suggest(kn.Value, names))
				continue
			}
			d.decode(k, vn, dst.FieldByIndex(path))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(n, key, "expected a list, got %s", describe(n))
			return
		}
		out := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, it := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", key, i), it, out.Index(i))
		}
		dst.Set(out)
	case reflect.Map:
		if n.Kind != yaml.MappingNode || t.Key().Kind() != reflect.String {
			d.problem(n, key, "expected a mapping of names, got %s", describe(n))
			return
		}
		out := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			k := joinKey(key, kn.Value)
			if out.MapIndex(reflect.ValueOf(kn.Value)).IsValid() {
				d.problem(kn, k, "key given twice")
				continue
			}
			v := reflect.New(t.Elem()).Elem()
			d.decode(k, vn, v)
			out.SetMapIndex(reflect.ValueOf(kn.Value).Convert(t.Key()), v)
		}
		dst.Set(out)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problem(n, key, "expected a string, got %s", describe(n))
			return
		}
		dst.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			d.problem(n, key, "expected true or false, got %s", describe(n))
			return
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int64:
		v, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil || v > math.MaxInt32 || v < math.MinInt32 {
			d.problem(n, key, "expected a whole number, got %s", describe(n))
			return
		}
		dst.SetInt(v)
	case reflect.Uint64:
		v, err := strconv.ParseUint(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.problem(n, key, "expected a whole number, not negative, got %s", describe(n))
			return
		}
		dst.SetUint(v)
	case reflect.Float64:
		v, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			d.problem(n, key, "expected a number, got %s", describe(n))
			return
		}
		dst.SetFloat(v)
	default:
		panic(fmt.Sprintf("scenario: no decoder for %s at %s", t, key))
	}
}

// ByteSize is a count of bytes, written as a number or with a unit
// ("200", "1.5KiB", "1MB").
type ByteSize int64

func (b *ByteSize) decodeYAML(d *decoder, key string, n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, key, "expected a size such as 200 or \"1MiB\", got %s", describe(n))
		return
	}
	var v any = n.Value
	if n.Tag == "!!int" || n.Tag == "!!float" {
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			d.problem(n, key, "expected a size such as 200 or \"1MiB\", got %s", describe(n))
			return
		}
		v = f
	}
	size, err := bytesize.Parse(v)
	if err != nil {
		d.problem(n, key, "%v", err)
		return
	}
	*b = ByteSize(size)
}

// String formats the size as bytesize writes it back.
func (b ByteSize) String() string { return bytesize.Format(int64(b)) }

func suggest(k string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(strings.ToLower(k), n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		sorted := slices.Clone(names)
		slices.Sort(sorted)
		return " (known keys: " + strings.Join(sorted, ", ") + ")"
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
