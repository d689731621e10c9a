package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
)

// examplePath is the documented example config at the repository root.
const examplePath = "../../config.example.yaml"

// TestExampleInSync fails when config.example.yaml drifts from the embedded
// defaults, which it starts with (the built-in network plugin's entry
// follows). Fix: go generate ./cmd/node (skein config defaults).
func TestExampleInSync(t *testing.T) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatalf("read example: %v", err)
	}
	if !bytes.HasPrefix(example, defaultsYAML) {
		t.Fatalf("%s does not start with core/config/defaults.yaml: run `go generate ./cmd/node`", examplePath)
	}
	abs, err := filepath.Abs(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir())
	if _, err := Load(WithFile(abs)); err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
}

// TestDefaultsCoverEveryKey fails when a config field is added without a
// documented default in defaults.yaml (and so in config.example.yaml).
func TestDefaultsCoverEveryKey(t *testing.T) {
	var raw map[string]any
	if err := yamlv3.Unmarshal(defaultsYAML, &raw); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, typ reflect.Type, node any)
	walk = func(path string, typ reflect.Type, node any) {
		m, ok := node.(map[string]any)
		if !ok {
			t.Errorf("defaults: %s is not a mapping", path)
			return
		}
		idx, names := fieldsOf(typ)
		for _, name := range names {
			key := joinKey(path, name)
			v, ok := m[name]
			if !ok {
				t.Errorf("defaults.yaml has no %s: document it with its default", key)
				continue
			}
			ft := typ.Field(idx[name]).Type
			switch {
			case ft.Kind() == reflect.Struct:
				walk(key, ft, v)
			case ft == reflect.TypeFor[map[string]Plugin]():
				walk(key+".store", reflect.TypeFor[Plugin](), v.(map[string]any)["store"])
			}
		}
		// Every key in the defaults must be decodable: Load covers that, and
		// a comment line above each key documents it.
	}
	walk("", reflect.TypeFor[Config](), raw)
}

// TestDefaultsCommented checks that every key of defaults.yaml has a comment.
func TestDefaultsCommented(t *testing.T) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(defaultsYAML, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, n *yamlv3.Node)
	walk = func(path string, n *yamlv3.Node) {
		if n.Kind != yamlv3.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			// Sections may be documented by their keys; leaves need a comment.
			if v.Kind != yamlv3.MappingNode || len(v.Content) == 0 {
				if k.HeadComment == "" && k.LineComment == "" && v.LineComment == "" {
					t.Errorf("defaults.yaml: %s has no comment", key)
				}
			}
			walk(key, v)
		}
	}
	walk("", doc.Content[0])
}
