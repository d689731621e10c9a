package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

// decodeConfig decodes the merged raw map into cfg strictly: every key must
// be known and every value of the field's type. Problems are collected, not
// returned, so one pass reports them all.
func (l *loader) decodeConfig(raw map[string]any, cfg *Config, template Plugin) {
	l.template = template
	l.decodeStruct("", raw, cfg)
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// fieldsOf maps the koanf tag of each tagged field of t to its index.
func fieldsOf(t reflect.Type) (map[string]int, []string) {
	idx := map[string]int{}
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("koanf")
		if tag == "" {
			continue
		}
		idx[tag] = i
		names = append(names, tag)
	}
	return idx, names
}

func (l *loader) decodeStruct(path string, raw any, dst any) {
	if raw == nil {
		return
	}
	m, ok := raw.(map[string]any)
	if !ok {
		l.problem(path, "expected a mapping of keys, got %s", describe(raw))
		return
	}
	v := reflect.ValueOf(dst).Elem()
	idx, names := fieldsOf(v.Type())
	for _, k := range sortedKeys(m) {
		key := joinKey(path, k)
		i, ok := idx[k]
		if !ok {
			l.problem(key, "unknown key%s", suggest(k, names))
			continue
		}
		l.decodeValue(key, m[k], v.Field(i))
	}
}

func (l *loader) fromEnv(key string) bool {
	src, ok := l.sources.keys[key]
	return ok && src.kind == kindEnv
}

func (l *loader) decodeValue(key string, raw any, fv reflect.Value) {
	if fv.Type() == durationType {
		s, ok := raw.(string)
		if !ok {
			l.problem(key, "expected a duration such as 10s or 250ms, got %s", describe(raw))
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			l.problem(key, "not a duration: %q (use a number and a unit: 10s, 250ms, 1m)", s)
			return
		}
		fv.SetInt(int64(d))
		return
	}
	switch fv.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			l.problem(key, "expected a string, got %s", describe(raw))
			return
		}
		fv.SetString(s)
	case reflect.Bool:
		switch b := raw.(type) {
		case bool:
			fv.SetBool(b)
		case string:
			parsed, err := strconv.ParseBool(b)
			if !l.fromEnv(key) || err != nil {
				l.problem(key, "expected true or false, got %s", describe(raw))
				return
			}
			fv.SetBool(parsed)
		default:
			l.problem(key, "expected true or false, got %s", describe(raw))
		}
	case reflect.Int:
		switch v := raw.(type) {
		case int:
			fv.SetInt(int64(v))
		case int64:
			fv.SetInt(v)
		case uint64:
			if v > math.MaxInt32 {
				l.problem(key, "%d is too large", v)
				return
			}
			fv.SetInt(int64(v))
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > math.MaxInt32 {
				l.problem(key, "expected a whole number, got %v", v)
				return
			}
			fv.SetInt(int64(v))
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if !l.fromEnv(key) || err != nil {
				l.problem(key, "expected a whole number, got %s", describe(raw))
				return
			}
			fv.SetInt(int64(n))
		default:
			l.problem(key, "expected a whole number, got %s", describe(raw))
		}
	case reflect.Slice:
		var items []any
		switch t := raw.(type) {
		case []any:
			items = t
		case string:
			if !l.fromEnv(key) {
				l.problem(key, "expected a list of strings, got %s", describe(raw))
				return
			}
			for _, s := range strings.Split(t, ",") {
				if s = strings.TrimSpace(s); s != "" {
					items = append(items, s)
				}
			}
		default:
			l.problem(key, "expected a list of strings, got %s", describe(raw))
			return
		}
		out := make([]string, 0, len(items))
		for i, it := range items {
			s, ok := it.(string)
			if !ok {
				l.problem(fmt.Sprintf("%s[%d]", key, i), "expected a string, got %s", describe(it))
				continue
			}
			out = append(out, s)
		}
		fv.Set(reflect.ValueOf(out))
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			l.problem(key, "expected a mapping of keys, got %s", describe(raw))
			return
		}
		switch fv.Type().Elem() {
		case reflect.TypeFor[any]():
			fv.Set(reflect.ValueOf(m))
		case reflect.TypeFor[string]():
			out := make(map[string]string, len(m))
			for _, k := range sortedKeys(m) {
				s, ok := m[k].(string)
				if !ok {
					l.problem(joinKey(key, k), "expected a string, got %s", describe(m[k]))
					continue
				}
				out[k] = s
			}
			fv.Set(reflect.ValueOf(out))
		case reflect.TypeFor[Plugin]():
			out := make(map[string]Plugin, len(m))
			for _, name := range sortedKeys(m) {
				p := l.template
				p.Args, p.PassEnv, p.Env = slices.Clone(p.Args), slices.Clone(p.PassEnv), maps.Clone(p.Env)
				l.decodeStruct(joinKey(key, name), m[name], &p)
				if m[name] == nil {
					continue
				}
				if p.Config == nil {
					p.Config = map[string]any{}
				}
				out[name] = p
			}
			fv.Set(reflect.ValueOf(out))
		default:
			panic(fmt.Sprintf("config: no decoder for %s", fv.Type()))
		}
	case reflect.Struct:
		l.decodeStruct(key, raw, fv.Addr().Interface())
	default:
		panic(fmt.Sprintf("config: no decoder for %s", fv.Type()))
	}
}

// describe names a raw value's YAML type for an error message.
func describe(v any) string {
	switch t := v.(type) {
	case string:
		return fmt.Sprintf("string %q", t)
	case bool:
		return fmt.Sprintf("boolean %v", t)
	case int, int64, uint64, int32:
		return fmt.Sprintf("integer %v", t)
	case float64, float32:
		return fmt.Sprintf("number %v", t)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest returns `; did you mean "x"?` for the known name closest to k, if
// it is close enough to be a likely typo.
func suggest(k string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return " (known keys: " + strings.Join(names, ", ") + ")"
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
