package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/peersource"
)

// ---- device ----

func (c *cli) deviceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "One account on several devices: link a device, list, rename and remove them",
		Long: `Every device of an account holds the account key and is a member of the
account's groups under its own device key.
  1. on a device of the account:  skein device link        -> a link token (10 min, one use)
  2. on the new device:           skein init --link <token>  (or, on a fresh running
                                  node, skein device join <token>)
The new device joins every group and contact of the account and receives the
history the linking device holds. skein device remove <device> (from another
device) removes a lost device from every group: each moves to a new epoch the
removed device cannot read, and what it writes afterwards is refused.`,
	}
	cmd.AddCommand(c.deviceLinkCommand(), c.deviceJoinCommand(), c.deviceListCommand(), c.deviceRemoveCommand(), c.deviceRenameCommand())
	return cmd
}

func (c *cli) deviceLinkCommand() *cobra.Command {
	var f clientFlags
	var ttl time.Duration
	var qr bool
	cmd := &cobra.Command{
		Use:   "link",
		Short: "Print a one-time link token for a new device of this account",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < time.Second || ttl > messenger.MaxLinkTTL {
				return fmt.Errorf("--ttl %s: want 1s to %s", ttl, messenger.MaxLinkTTL)
			}
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Devices.Link(ctx, &apiv1.LinkDeviceRequest{TtlSeconds: uint32(ttl / time.Second)})
				if err != nil {
					return rpcError("device link", err)
				}
				exp := time.Unix(0, r.GetExpiresAt())
				if f.json {
					out := map[string]any{"token": r.GetToken(), "expires_at": exp.UTC().Format(time.RFC3339)}
					if qr {
						q, err := group.RenderQR(r.GetToken())
						if err != nil {
							return err
						}
						out["qr"] = q
					}
					return c.writeJSON(out)
				}
				fmt.Fprintln(c.stdout, r.GetToken())
				if qr {
					q, err := group.RenderQR(r.GetToken())
					if err != nil {
						return err
					}
					fmt.Fprintln(c.stdout, q)
				}
				fmt.Fprintf(c.stderr, "valid until %s, for one device: on the new device run  skein init --link <token>\n", exp.Format(time.RFC3339))
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().DurationVar(&ttl, "ttl", messenger.DefaultLinkTTL, "how long the token is valid (at most 24h)")
	cmd.Flags().BoolVar(&qr, "qr", false, "also draw the token as a QR code")
	return cmd
}

func (c *cli) deviceJoinCommand() *cobra.Command {
	var f clientFlags
	var name string
	cmd := &cobra.Command{
		Use:   "join <token>",
		Short: "Make this fresh running node a device of the link token's account",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				stream, err := cl.Devices.Join(ctx, &apiv1.JoinAccountRequest{Token: args[0], Name: name})
				if err != nil {
					return rpcError("device join", err)
				}
				for {
					p, err := stream.Recv()
					if err != nil {
						return rpcError("device join", err)
					}
					if done := c.printProgress(f.json, progressOf(p)); done {
						return nil
					}
				}
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&name, "name", "", "this device's name, shown by skein device list")
	return cmd
}

// linkProgress is one progress line of a join, as printed.
type linkProgress struct {
	Step     string `json:"step"`
	Group    string `json:"group,omitempty"`
	Name     string `json:"name,omitempty"`
	Done     uint32 `json:"done"`
	Total    uint32 `json:"total"`
	Messages uint32 `json:"messages"`
	Account  string `json:"account,omitempty"`
	Device   string `json:"device,omitempty"`
}

func progressOf(p *apiv1.JoinAccountProgress) linkProgress {
	return linkProgress{Step: p.GetStep(), Group: p.GetGroup(), Name: p.GetGroupName(), Done: p.GetDone(), Total: p.GetTotal(),
		Messages: p.GetMessages(), Account: p.GetAccount(), Device: p.GetDevice()}
}

// printProgress prints one step (JSON lines with asJSON; else text on
// stderr, the result on stdout) and reports whether it was the last.
func (c *cli) printProgress(asJSON bool, p linkProgress) bool {
	if asJSON { // one object per line, for scripts that read as it goes
		b, _ := json.Marshal(p)
		fmt.Fprintf(c.stdout, "%s\n", b)
		return p.Step == "done"
	}
	name := p.Name
	if name == "" && p.Group != "" {
		name = p.Group[:12]
	}
	switch p.Step {
	case "keys":
		fmt.Fprintf(c.stderr, "account keys received; joining %d groups\n", p.Total)
	case "group":
		if name == "" {
			name = "(account)"
		}
		fmt.Fprintf(c.stderr, "[%d/%d] joined %s\n", p.Done, p.Total, name)
	case "history":
		fmt.Fprintf(c.stderr, "history of %s: %d messages\n", name, p.Messages)
	case "done":
		fmt.Fprintf(c.stdout, "this node is now device %s of account %s: %d groups, %d history messages\n",
			shortKey(p.Device), shortKey(p.Account), p.Total, p.Messages)
		return true
	}
	return false
}

func shortKey(k string) string {
	if len(k) > 16 {
		return k[:16]
	}
	return k
}

func (c *cli) deviceListCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List this account's devices: name, fingerprint, added, last seen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Devices.List(ctx, &apiv1.ListDevicesRequest{})
				if err != nil {
					return rpcError("device list", err)
				}
				if f.json {
					out := []map[string]any{}
					for _, d := range r.GetDevices() {
						out = append(out, deviceJSON(d))
					}
					return c.writeJSON(out)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tFINGERPRINT\tADDED\tLAST SEEN\t")
				for _, d := range r.GetDevices() {
					name := d.GetName()
					if name == "" {
						name = "-"
					}
					if d.GetThis() {
						name += " (this)"
					}
					if d.GetRemoved() {
						name += " (removed)"
					}
					seen := "-"
					if d.GetLastSeen() != 0 {
						seen = time.Unix(0, d.GetLastSeen()).Format(time.DateTime)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, d.GetFingerprint(), time.Unix(0, d.GetAddedAt()).Format(time.DateTime), seen)
				}
				return tw.Flush()
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func deviceJSON(d *apiv1.Device) map[string]any {
	out := map[string]any{"device": d.GetDevice(), "fingerprint": d.GetFingerprint(), "name": d.GetName(),
		"added_at": time.Unix(0, d.GetAddedAt()).UTC().Format(time.RFC3339), "this": d.GetThis(), "removed": d.GetRemoved()}
	if d.GetLastSeen() != 0 {
		out["last_seen"] = time.Unix(0, d.GetLastSeen()).UTC().Format(time.RFC3339)
	}
	return out
}

func (c *cli) deviceRemoveCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "remove <device>",
		Short: "Remove a device (name or fingerprint prefix) from the account and every group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Devices.Remove(ctx, &apiv1.RemoveDeviceRequest{Device: args[0]})
				if err != nil {
					return rpcError("device remove", err)
				}
				if f.json {
					out := deviceJSON(r.GetDevice())
					out["groups"] = r.GetGroups()
					return c.writeJSON(out)
				}
				fmt.Fprintf(c.stdout, "device %s removed from %d groups; it reads nothing sent from now on\n", r.GetDevice().GetFingerprint(), r.GetGroups())
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func (c *cli) deviceRenameCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "rename [<device>] <name>",
		Short: "Name a device of the account (this device when only a name is given)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dev, name := "", args[0]
			if len(args) == 2 {
				dev, name = args[0], args[1]
			}
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				if _, err := cl.Devices.Rename(ctx, &apiv1.RenameDeviceRequest{Device: dev, Name: name}); err != nil {
					return rpcError("device rename", err)
				}
				if f.json {
					return c.writeJSON(map[string]any{"device": dev, "name": name})
				}
				fmt.Fprintf(c.stdout, "device renamed %q\n", name)
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

// withoutPluginEnv is the environment without SKEIN_PLUGINS__ variables.
func withoutPluginEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SKEIN_PLUGINS__") {
			out = append(out, kv)
		}
	}
	return out
}

// checkLinkToken refuses, before init writes anything, a link token that
// does not parse or has expired.
func checkLinkToken(token string) error {
	t, err := group.ParseLinkToken(strings.TrimSpace(token))
	if err != nil {
		return fmt.Errorf("--link: %w", err)
	}
	if err := t.CheckExpiry(time.Now()); err != nil {
		return fmt.Errorf("--link: %w", err)
	}
	return nil
}

// linkAfterInit is `skein init --link`: it starts the node of the data
// directory init just wrote, makes it a device of the token's account
// (showing progress), and stops it.
func (c *cli) linkAfterInit(cmd *cobra.Command, token, name string, passphrase []byte, asJSON bool) error {
	cfg, _, err := c.load(cmd)
	if err != nil {
		return err
	}
	if pluginOfKind(cfg, "network.") == "" {
		return errors.New("init --link: the config enables no network plugin: the new device cannot reach the linking one")
	}
	logger := c.configLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(cfg, node.WithLogger(logger))
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	stopNode := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
		defer cancel()
		return n.Stop(sctx)
	}
	ms, err := startMessenger(ctx, cfg, n, logger, passphrase, peersource.NewBook(0))
	if err != nil {
		return errors.Join(err, stopNode())
	}
	res, jerr := ms.m.JoinAccount(ctx, token, name, func(p messenger.LinkProgress) {
		lp := linkProgress{Step: p.Step, Name: p.Name, Done: uint32(p.Done), Total: uint32(p.Total), Messages: uint32(p.Messages)}
		if !p.Group.IsZero() {
			lp.Group = p.Group.String()
		}
		if p.Step == "done" {
			id := ms.m.Identity()
			lp.Account, lp.Device = id.AccountKey().String(), id.DeviceKey().String()
		}
		c.printProgress(asJSON, lp)
	})
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Node.ShutdownTimeout)
	defer cancel()
	err = errors.Join(ms.Stop(sctx), stopNode())
	if jerr != nil && !res.Account.IsZero() {
		return fmt.Errorf("init --link: %w (this node is a device of the account; skein run it and invite it to what it lacks)", jerr)
	}
	if jerr != nil {
		return fmt.Errorf("init --link: %w (the data directory %s was initialised with an account of its own and no group: skein run it and link it with skein device join <a new token>, or remove it to start over)", jerr, cfg.Node.DataDir)
	}
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(c.stderr, "next: skein run --data-dir %s\n", cfg.Node.DataDir)
	}
	return nil
}
