package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

func (c *cli) pluginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Serve a built-in plugin out of process (run by the node, not by hand)",
	}
	serve := &cobra.Command{
		Use:   "serve <id>",
		Short: "Serve the built-in plugin <id> over the plugin protocol",
		Long: `serve runs one built-in plugin (e.g. store.pebble) as a plugin process: the
node re-executes its own binary this way for every built-in configured with
mode: process. It speaks the go-plugin handshake on stdout and refuses to run
unless started by a Skein host. To debug a plugin by hand, run it with
SKEIN_PLUGIN_DEBUG=1 and point a config entry with mode: reattach at the
line it prints.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			factory, ok := pluginhost.Lookup(id)
			if !ok {
				return fmt.Errorf("plugin serve: %s is not built in (built in: %s)", id, strings.Join(pluginhost.Registered(), ", "))
			}
			var level slog.Level
			if c.logLevel != "" {
				if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
					return fmt.Errorf("plugin serve: log level %q: use debug, info, warn or error", c.logLevel)
				}
			}
			sdk.ServeFunc(factory, sdk.WithLogLevel(level)) // made once logging is set up; exits the process
			return nil
		},
	}
	cmd.AddCommand(serve)
	return cmd
}
