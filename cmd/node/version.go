package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

// version is the release version, set at build time with
// -ldflags "-X main.version=v1.2.3"; "dev" otherwise.
var version = "dev"

// versionInfo is what `skein version` prints.
type versionInfo struct {
	Version        string   `json:"version"`
	Commit         string   `json:"commit,omitempty"`
	Modified       bool     `json:"modified,omitempty"`
	GoVersion      string   `json:"go_version"`
	Platform       string   `json:"platform"`
	PluginProtocol int      `json:"plugin_protocol"`
	BuiltinPlugins []string `json:"builtin_plugins"`
}

func currentVersion() versionInfo {
	v := versionInfo{
		Version:        version,
		GoVersion:      runtime.Version(),
		Platform:       runtime.GOOS + "/" + runtime.GOARCH,
		PluginProtocol: sdk.ProtocolVersion,
		BuiltinPlugins: pluginhost.Registered(),
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
	}
	return v
}

func (c *cli) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of skein, its plugin protocol and built-in plugins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := currentVersion()
			if asJSON {
				return c.writeJSON(v)
			}
			commit := v.Commit
			if commit == "" {
				commit = "unknown"
			}
			if v.Modified {
				commit += " (modified)"
			}
			fmt.Fprintf(c.stdout, "skein %s\n  commit           %s\n  go               %s %s\n  plugin protocol  v%d\n  built-in plugins %s\n",
				v.Version, commit, v.GoVersion, v.Platform, v.PluginProtocol, strings.Join(v.BuiltinPlugins, ", "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
