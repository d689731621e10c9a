package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/sdk"
)

// config.example.yaml is `skein config defaults`: the node's defaults, the
// network entry skein init writes and a disabled entry for each other
// built-in, every key of each plugin's own config listed from its schema.
//go:generate sh -c "go run . config defaults > ../../config.example.yaml"

// exampleConfig is the node's embedded defaults followed by the network
// entry and a disabled entry for each other built-in plugin: every key a
// config file may hold.
func exampleConfig() ([]byte, error) {
	entry, err := networkEntry(nil)
	if err != nil {
		return nil, err
	}
	out := append(config.DefaultYAML(), entry...)
	for _, id := range pluginhost.Registered() {
		// The store is the defaults' own entry, the network the one above.
		if strings.HasPrefix(id, "store.") || id == ipfs.ID {
			continue
		}
		e, err := disabledEntry(id)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// disabledEntry is a config entry for the built-in plugin id, disabled,
// with every key of its own config commented out with its default: the
// keys to enable it with. Its name is the second part of the ID
// (discovery.mdns: mdns).
func disabledEntry(id string) ([]byte, error) {
	f, _ := pluginhost.Lookup(id)
	d, err := f().Describe(context.Background())
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", id, err)
	}
	name := strings.ReplaceAll(id[strings.IndexByte(id, '.')+1:], "-", "_")
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n  # The built-in %s plugin (%s), off: enable it and set what differs.\n", id, joinKinds(d.Kinds))
	fmt.Fprintf(&b, "  %s:\n    enabled: false\n    id: %s\n", name, id)
	if len(d.ConfigSchema) == 0 {
		return b.Bytes(), nil
	}
	b.WriteString("    config:\n")
	writeKeys(&b, d.ConfigSchema, nil)
	return b.Bytes(), nil
}

// writeKeys writes one commented description and one key per schema key:
// set (key: value) when set names it, else commented out with its default.
func writeKeys(b *bytes.Buffer, schema []sdk.ConfigKey, set map[string]string) {
	for _, k := range schema {
		for _, line := range wrap(k.Description, 72) {
			b.WriteString("      # " + line + "\n")
		}
		if v, ok := set[k.Key]; ok {
			fmt.Fprintf(b, "      %s: %s\n", k.Key, v)
			continue
		}
		fmt.Fprintf(b, "      # %s: %s\n", k.Key, yamlDefault(k))
	}
}

// networkEntry is the plugins.network entry `skein init` writes and
// config.example.yaml shows: the built-in network plugin with every key of
// its own config, taken from the plugin's schema (Describe), so that the
// two cannot drift from what the plugin takes. A key left commented out
// keeps the default shown. listen, when not nil, is written as the node's
// listen addresses (init --port).
func networkEntry(listen []string) ([]byte, error) {
	f, ok := pluginhost.Lookup(ipfs.ID)
	if !ok {
		return nil, fmt.Errorf("%s is not built in", ipfs.ID)
	}
	d, err := f().Describe(context.Background())
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", ipfs.ID, err)
	}
	var b bytes.Buffer
	b.WriteString(`
  # The network: libp2p (TCP and QUIC on port 4001, WebSocket on 4002, Noise,
  # yamux, gossipsub, bitswap, a private DHT). Below are all the keys of its
  # own config with their defaults; those commented out keep the default.
  # ` + "`skein plugins describe network`" + ` lists them too.
  network:
    id: ` + ipfs.ID + `
    config:
`)
	// Written whatever the default: where the node keeps its network key
	// and blocks, and the peers it dials (none: no third party).
	set := map[string]string{
		"data_dir":  config.DataDirVar + "/network",
		"bootstrap": "[]",
	}
	if listen != nil {
		set["listen"] = flowList(listen)
	}
	writeKeys(&b, d.ConfigSchema, set)
	return b.Bytes(), nil
}

// yamlDefault renders a schema default (a display string: lists print as
// Go's fmt does, "[a b]") as a YAML value.
func yamlDefault(k sdk.ConfigKey) string {
	switch k.Type {
	case "list":
		return flowList(strings.Fields(strings.Trim(k.Default, "[]")))
	case "map", "int", "number", "bool", "duration", "size":
		if k.Default == "" {
			return `""`
		}
		return k.Default
	}
	out, err := yamlv3.Marshal(k.Default)
	if err != nil {
		return fmt.Sprintf("%q", k.Default)
	}
	return strings.TrimSpace(string(out))
}

// flowList is a YAML flow sequence of plain strings.
func flowList(items []string) string {
	return "[" + strings.Join(items, ", ") + "]"
}

// wrap breaks text into lines of at most width bytes at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
