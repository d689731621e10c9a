package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/node"
)

func (c *cli) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration, or print the defaults",
	}
	cmd.AddCommand(c.configCheckCommand(), c.configDefaultsCommand())
	return cmd
}

// checkResult is what `config check --json` prints.
type checkResult struct {
	OK       bool          `json:"ok"`
	File     string        `json:"file"`
	Problems []string      `json:"problems"`
	Warnings []string      `json:"warnings"`
	Plugins  []pluginEntry `json:"plugins"`
}

func (c *cli) configCheckCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration without starting anything",
		Long: `check loads the configuration (defaults, file, environment, flags), reports
every problem at once with the file or variable and the key, checks external
plugin binaries against their sha256, and passes each built-in plugin's
config subtree to that plugin's Configure (in process, nothing started).
Exit status 0 when valid, 1 with the problems otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := checkResult{Problems: []string{}, Warnings: []string{}, Plugins: []pluginEntry{}}
			cfg, file, err := c.load(cmd)
			res.File = file
			if err == nil {
				var warnings []config.Problem
				warnings, err = node.CheckPlugins(cmd.Context(), cfg)
				for _, w := range warnings {
					res.Warnings = append(res.Warnings, w.String())
				}
				for _, name := range sortedNames(cfg) {
					res.Plugins = append(res.Plugins, entryOf(name, cfg.Plugins[name]))
				}
			} else if inv, ok := err.(*config.InvalidError); ok && inv.Partial != nil {
				// Every problem at once: the plugins' own checks too, for
				// the plugins whose entries have none of their own.
				var warnings []config.Problem
				warnings, err = checkPartial(cmd.Context(), inv)
				for _, w := range warnings {
					res.Warnings = append(res.Warnings, w.String())
				}
			}
			if inv, ok := err.(*config.InvalidError); ok {
				for _, p := range inv.Problems {
					res.Problems = append(res.Problems, p.String())
				}
			} else if err != nil {
				return err // unreadable file and the like
			}
			res.OK = len(res.Problems) == 0
			if asJSON {
				if err := c.writeJSON(res); err != nil {
					return err
				}
				if !res.OK {
					return silentExit(1)
				}
				return nil
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(c.stderr, "warning: %s\n", w)
			}
			if !res.OK {
				return err
			}
			source := res.File
			if source == "" {
				source = "embedded defaults (no config file)"
			}
			fmt.Fprintf(c.stdout, "config ok: %s\n  data_dir  %s\n", source, cfg.Node.DataDir)
			for _, p := range res.Plugins {
				state := ""
				if !p.Enabled {
					state = " (disabled)"
				}
				fmt.Fprintf(c.stdout, "  plugin    %s: %s, %s, %s%s\n", p.Name, p.ID, p.Mode, p.Binary, state)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (c *cli) configDefaultsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "defaults",
		Short: "Print every key, commented, with its default: the node's and the built-in plugins' (config.example.yaml)",
		Long: `defaults prints the node's embedded defaults followed by the network plugin
entry skein init writes and a disabled entry for each other built-in plugin,
each with every key of the plugin's own config and its default: every key a
config file may hold. config.example.yaml is this.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b, err := exampleConfig()
			if err != nil {
				return err
			}
			_, err = c.stdout.Write(b)
			return err
		},
	}
}

// checkPartial runs node.CheckPlugins on the partial config of inv for the
// plugins without problems of their own and returns inv with their
// problems added.
func checkPartial(ctx context.Context, inv *config.InvalidError) ([]config.Problem, error) {
	partial := *inv.Partial
	partial.Plugins = map[string]config.Plugin{}
	for name, p := range inv.Partial.Plugins {
		if problemsFor(inv, name) == "" {
			partial.Plugins[name] = p
		}
	}
	warnings, err := node.CheckPlugins(ctx, &partial)
	more, ok := err.(*config.InvalidError)
	if !ok {
		return warnings, inv
	}
	all := &config.InvalidError{Problems: append(slices.Clone(inv.Problems), more.Problems...), Partial: inv.Partial}
	slices.SortStableFunc(all.Problems, func(a, b config.Problem) int { return strings.Compare(a.Key, b.Key) })
	return warnings, all
}
