// Package config loads and validates a Skein node's configuration.
//
// Sources are layered, lowest precedence first:
//
//  1. the embedded defaults (defaults.yaml; config.example.yaml is these
//     followed by the built-in network plugin's entry, from skein config defaults)
//  2. a YAML file (WithFile)
//  3. the environment: SKEIN_ + the key path in upper case with levels joined
//     by "__", e.g. SKEIN_NODE__DATA_DIR=/srv/skein (WithEnviron)
//  4. command-line flags mapped to keys (WithFlags)
//
// Loading is strict: an unknown key, a value of the wrong type, a bad
// address, a malformed sha256 or a missing plugin binary is reported with the
// source that set it (file, variable or flag) and the key path. Every problem
// is reported at once, in one *InvalidError:
//
//	config /etc/skein.yaml: plugins.store.sha256: not a sha256 hex digest
//
// Each plugin's own settings (plugins.<name>.config) are not interpreted
// here: they are handed unparsed to the plugin's Configure, and the
// diagnostics it returns are turned into problems with the full key by
// Config.PluginProblems.
//
// Usage:
//
//	cfg, err := config.Load(
//		config.WithFile(path),
//		config.WithEnviron(os.Environ),
//		config.WithFlags(cmd.Flags(), map[string]string{"data-dir": "node.data_dir"}),
//		config.WithBuiltins(pluginhost.IDs()),
//	)
//	if err != nil {
//		return err // *InvalidError lists every problem
//	}
//	for _, name := range cfg.PluginNames() { ... cfg.Plugins[name] ... }
package config
