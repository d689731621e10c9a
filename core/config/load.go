package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
	yamlv3 "go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that sets a config key.
const EnvPrefix = "SKEIN_"

// EnvConfigFile names the environment variable that gives the config file
// when no --config flag does (see WithFile). It is not a config key.
const EnvConfigFile = "SKEIN_CONFIG"

const sourceDefaults = "defaults"

type sourceKind int

const (
	kindDefaults sourceKind = iota
	kindFile
	kindEnv
	kindFlag
)

// source says where a value came from.
type source struct {
	kind  sourceKind
	label string // "defaults", a file path, "env VAR", "flag --name"
	dir   string // base for relative paths
}

// sourceIndex maps each flattened key to the source of its value.
type sourceIndex struct {
	keys map[string]source
	base source // fallback
}

// lookup finds the source of key: its own, else the highest-precedence
// source that set anything under it, else the same for its parent.
func (s *sourceIndex) lookup(key string) source {
	for k := key; k != ""; k = parentKey(k) {
		if src, ok := s.keys[k]; ok {
			return src
		}
		best, found := source{}, false
		for sk, src := range s.keys {
			if strings.HasPrefix(sk, k+".") && (!found || src.kind > best.kind ||
				(src.kind == best.kind && src.label < best.label)) {
				best, found = src, true
			}
		}
		if found {
			return best
		}
	}
	return s.base
}

func parentKey(k string) string {
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return ""
	}
	return k[:i]
}

// Option adjusts Load.
type Option func(*loader) error

// WithFile layers the YAML file at path over the defaults. An empty path
// adds nothing. A file that cannot be read is an error.
func WithFile(path string) Option {
	return func(l *loader) error {
		l.file = path
		return nil
	}
}

// WithEnviron layers SKEIN_* variables from environ (usually os.Environ) over
// the file. SKEIN_NODE__DATA_DIR sets node.data_dir: strip SKEIN_, lower
// case, "__" separates levels. Variables under SKEIN_ without "__" (such as
// SKEIN_CONFIG) are not config keys and are ignored.
func WithEnviron(environ func() []string) Option {
	return func(l *loader) error {
		l.environ = environ
		return nil
	}
}

// WithFlags layers the flags of fs that were set on the command line over
// the environment. keys maps a flag name to the config key it sets, e.g.
// "data-dir" -> "node.data_dir"; flags not in keys are ignored.
func WithFlags(fs *pflag.FlagSet, keys map[string]string) Option {
	return func(l *loader) error {
		for name, key := range keys {
			if fs.Lookup(name) == nil {
				return fmt.Errorf("config flags: no flag --%s for key %s", name, key)
			}
		}
		l.flags, l.flagKeys = fs, keys
		return nil
	}
}

// WithBuiltins names the plugin IDs built into this binary. With it, Load
// checks that a linked plugin, or one in process mode without a path, has a
// built-in ID. Without it that check is skipped.
func WithBuiltins(ids []string) Option {
	return func(l *loader) error {
		l.builtins = slices.Clone(ids)
		if l.builtins == nil {
			l.builtins = []string{}
		}
		return nil
	}
}

// WithWorkDir sets the directory relative paths from the environment and
// flags are resolved against. Default: the current directory.
func WithWorkDir(dir string) Option {
	return func(l *loader) error {
		l.workDir = dir
		return nil
	}
}

type loader struct {
	file      string
	fileBytes []byte // tests: the file's content, not read from disk
	environ   func() []string
	flags     *pflag.FlagSet
	flagKeys  map[string]string
	builtins  []string // nil: not checked
	template  Plugin
	workDir   string

	sources  *sourceIndex
	problems []Problem
	failed   map[string]bool
}

// layer is one source's values.
type layer struct {
	raw  map[string]any
	srcs map[string]source
}

// Load reads the embedded defaults and the sources given by opts, merges
// them, and returns the validated config. Problems with the values come back
// together in an *InvalidError (errors.Is(err, ErrInvalid)).
func Load(opts ...Option) (*Config, error) {
	l := &loader{sources: &sourceIndex{keys: map[string]source{}}}
	for _, opt := range opts {
		if err := opt(l); err != nil {
			return nil, err
		}
	}
	if l.workDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("config: working directory: %w", err)
		}
		l.workDir = wd
	}
	defaults := source{kind: kindDefaults, label: sourceDefaults, dir: l.workDir}
	l.sources.base = defaults

	var layers []layer
	defaultsRaw, err := parsedDefaults()
	if err != nil {
		return nil, fmt.Errorf("config: embedded defaults: %w", err)
	}
	dl := layer{raw: defaultsRaw, srcs: sourcesOf(defaultsRaw, defaults)}
	layers = append(layers, dl)

	if l.file != "" {
		abs, err := filepath.Abs(l.file)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", l.file, err)
		}
		src := source{kind: kindFile, label: l.file, dir: filepath.Dir(abs)}
		// The file provider reads; parsing is ours so a YAML error keeps its line.
		b := l.fileBytes
		if b == nil {
			b, err = file.Provider(abs).ReadBytes()
			if err != nil {
				return nil, fmt.Errorf("config %s: %w", l.file, err)
			}
		}
		fl, err := l.yamlLayer(b, src)
		if err != nil {
			return nil, &InvalidError{Problems: []Problem{{Source: l.file, Message: err.Error()}}}
		}
		layers = append(layers, fl)
	}
	if l.environ != nil {
		el, err := l.envLayer()
		if err != nil {
			return nil, err
		}
		layers = append(layers, el)
	}
	if l.flags != nil {
		fl, err := l.flagLayer()
		if err != nil {
			return nil, err
		}
		layers = append(layers, fl)
	}

	dropStaleDefaultPluginConfig(layers)

	merged := koanf.New(".")
	for _, ly := range layers {
		if err := merged.Load(mapProvider(ly.raw), nil); err != nil {
			return nil, fmt.Errorf("config: merge: %w", err)
		}
		maps.Copy(l.sources.keys, ly.srcs)
	}
	// Keys whose value a higher layer replaced by a scalar or a whole
	// section must not keep a stale source from below.
	flat := merged.All()
	for k := range l.sources.keys {
		if _, ok := flat[k]; !ok {
			delete(l.sources.keys, k)
		}
	}

	cfg := &Config{sources: l.sources}
	template, err := l.pluginTemplate(dl.raw)
	if err != nil {
		return nil, fmt.Errorf("config: embedded defaults: %w", err)
	}
	l.decodeConfig(merged.Raw(), cfg, template)
	l.validate(cfg)
	if len(l.problems) > 0 {
		slices.SortStableFunc(l.problems, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
		return nil, &InvalidError{Problems: l.problems, Partial: cfg}
	}
	return cfg, nil
}

var defaultsCache struct {
	once sync.Once
	raw  map[string]any
	err  error
}

// parsedDefaults returns a fresh copy of the parsed embedded defaults
// (parsed once: YAML parsing is most of the cost of Load).
func parsedDefaults() (map[string]any, error) {
	defaultsCache.once.Do(func() {
		l := &loader{}
		ly, err := l.yamlLayer(defaultsYAML, source{})
		defaultsCache.raw, defaultsCache.err = ly.raw, err
	})
	if defaultsCache.err != nil {
		return nil, defaultsCache.err
	}
	return deepCopy(defaultsCache.raw), nil
}

// yamlLayer parses YAML bytes into a layer. A document that is not a
// mapping, or not YAML, is an error with its line.
func (l *loader) yamlLayer(b []byte, src source) (layer, error) {
	var node yamlv3.Node
	if err := yamlv3.Unmarshal(b, &node); err != nil {
		return layer{}, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(node.Content) > 0 && node.Content[0].Kind != yamlv3.MappingNode {
		return layer{}, fmt.Errorf("not valid config: the document must be a mapping of keys, line %d", node.Content[0].Line)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		return layer{}, fmt.Errorf("not valid YAML: %w", err)
	}
	raw = withoutNulls(raw)
	return layer{raw: raw, srcs: sourcesOf(raw, src)}, nil
}

// envLayer reads SKEIN_* variables.
func (l *loader) envLayer() (layer, error) {
	srcs := map[string]source{}
	var bad []Problem
	p := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: l.environ,
		TransformFunc: func(name, value string) (string, any) {
			rest := strings.TrimPrefix(name, EnvPrefix)
			if !strings.Contains(rest, "__") {
				return "", nil // SKEIN_CONFIG and friends: not config keys
			}
			parts := strings.Split(strings.ToLower(rest), "__")
			for _, part := range parts {
				if part == "" || strings.Contains(part, ".") {
					bad = append(bad, Problem{Source: "env " + name, Message: "not a config variable: levels are joined by a double underscore, e.g. SKEIN_NODE__DATA_DIR"})
					return "", nil
				}
			}
			key := strings.Join(parts, ".")
			src := source{kind: kindEnv, label: "env " + name, dir: l.workDir}
			// Values inside a plugin's own subtree are YAML scalars or flow
			// collections, so a plugin gets 64 as a number, not "64".
			var v any = value
			if len(parts) > 3 && parts[0] == "plugins" && parts[2] == "config" {
				var parsed any
				if err := yamlv3.Unmarshal([]byte(value), &parsed); err == nil && parsed != nil {
					v = parsed
				}
			}
			srcs[key] = src
			return key, v
		},
	})
	raw, err := p.Read()
	if err != nil {
		return layer{}, fmt.Errorf("config: environment: %w", err)
	}
	l.problems = append(l.problems, bad...)
	// A variable may set a whole section or a plugin subtree value that is a
	// map: record sources of every leaf below it too.
	flatSrcs := map[string]source{}
	for k, src := range srcs {
		flatSrcs[k] = src
		if m, ok := getPath(raw, k).(map[string]any); ok {
			maps.Copy(flatSrcs, sourcesOfAt(m, k, src))
		}
	}
	return layer{raw: raw, srcs: flatSrcs}, nil
}

// flagLayer reads the flags set on the command line.
func (l *loader) flagLayer() (layer, error) {
	srcs := map[string]source{}
	p := posflag.ProviderWithFlag(l.flags, ".", nil, func(f *pflag.Flag) (string, any) {
		key, ok := l.flagKeys[f.Name]
		if !ok || !f.Changed {
			return "", nil
		}
		srcs[key] = source{kind: kindFlag, label: "flag --" + f.Name, dir: l.workDir}
		return key, posflag.FlagVal(l.flags, f)
	})
	raw, err := p.Read()
	if err != nil {
		return layer{}, fmt.Errorf("config: flags: %w", err)
	}
	return layer{raw: raw, srcs: srcs}, nil
}

// dropStaleDefaultPluginConfig removes a default plugin's config subtree from
// the defaults layer when a higher layer gives that plugin another ID: the
// defaults' settings belong to the default plugin, not to its replacement.
func dropStaleDefaultPluginConfig(layers []layer) {
	defPlugins, _ := layers[0].raw["plugins"].(map[string]any)
	for name, entry := range defPlugins {
		def, _ := entry.(map[string]any)
		if def == nil {
			continue
		}
		id := def["id"]
		for _, ly := range layers[1:] {
			if v := getPath(ly.raw, "plugins."+name+".id"); v != nil {
				id = v
			}
		}
		if id != def["id"] {
			delete(def, "config")
			for k := range layers[0].srcs {
				if strings.HasPrefix(k, "plugins."+name+".config") {
					delete(layers[0].srcs, k)
				}
			}
		}
	}
}

// pluginTemplate decodes the default "store" entry, less its ID and config,
// as the defaults of every plugin entry.
func (l *loader) pluginTemplate(defaults map[string]any) (Plugin, error) {
	entry, _ := getPath(defaults, "plugins.store").(map[string]any)
	if entry == nil {
		return Plugin{}, errors.New("no plugins.store entry to take plugin defaults from")
	}
	sub := &loader{sources: &sourceIndex{keys: map[string]source{}}}
	var p Plugin
	sub.decodeStruct("plugins.store", entry, &p)
	if len(sub.problems) > 0 {
		return Plugin{}, &InvalidError{Problems: sub.problems}
	}
	p.ID, p.Config = "", nil
	return p, nil
}

// mapProvider is a koanf.Provider over a map already read.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: map provider does not read bytes")
}

// Read returns a deep copy: koanf merges into the maps it is given, and a
// layer must stay as read.
func (m mapProvider) Read() (map[string]any, error) { return deepCopy(m), nil }

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return deepCopy(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

// withoutNulls drops keys with a null value (an empty "key:" in YAML): they
// mean "not set here", so a lower layer's value stands.
func withoutNulls(m map[string]any) map[string]any {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			m[k] = withoutNulls(t)
		}
	}
	return m
}

// sourcesOf records src for every leaf key of m.
func sourcesOf(m map[string]any, src source) map[string]source { return sourcesOfAt(m, "", src) }

func sourcesOfAt(m map[string]any, prefix string, src source) map[string]source {
	out := map[string]source{}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			maps.Copy(out, sourcesOfAt(sub, key, src))
			continue
		}
		out[key] = src
	}
	return out
}

// getPath returns the value at a dotted key path, or nil.
func getPath(m map[string]any, key string) any {
	var cur any = m
	for _, part := range strings.Split(key, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[part]
	}
	return cur
}

// problem records a problem with key, naming the source of its value. Only
// the first problem of a key is kept, and none below a key that already has
// one: a value that failed to decode is not also reported as out of range.
func (l *loader) problem(key, format string, args ...any) {
	l.problemFrom(key, key, format, args...)
}

// problemFrom is problem naming the source of the value of sourceKey: for
// a key that is missing because of another key's value.
func (l *loader) problemFrom(key, sourceKey, format string, args ...any) {
	if l.failed == nil {
		l.failed = map[string]bool{}
	}
	for k := key; k != ""; k = parentKey(k) {
		if l.failed[k] {
			return
		}
	}
	l.failed[key] = true
	l.problems = append(l.problems, Problem{
		Source:  l.sources.lookup(sourceKey).label,
		Key:     key,
		Message: fmt.Sprintf(format, args...),
	})
}
