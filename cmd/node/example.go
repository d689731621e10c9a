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

// config.example.yaml is `skein config defaults`: the node's defaults and
// the network entry skein init writes, every key of the plugin's own
// config listed from its schema.
//go:generate sh -c "go run . config defaults > ../../config.example.yaml"

// exampleConfig is the node's embedded defaults followed by the network
// entry: every key a config file may hold.
func exampleConfig() ([]byte, error) {
	entry, err := networkEntry(nil)
	if err != nil {
		return nil, err
	}
	return append(config.DefaultYAML(), entry...), nil
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
	for _, k := range d.ConfigSchema {
		for _, line := range wrap(k.Description, 72) {
			b.WriteString("      # " + line + "\n")
		}
		if v, ok := set[k.Key]; ok {
			fmt.Fprintf(&b, "      %s: %s\n", k.Key, v)
			continue
		}
		fmt.Fprintf(&b, "      # %s: %s\n", k.Key, yamlDefault(k))
	}
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
