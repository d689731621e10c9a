package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
)

// groupReplicateCommand registers a group with a replication node.
func (c *cli) groupReplicateCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "replicate <group> <token>",
		Short: "Register a group with a replication node, from the token its operator gave you",
		Long: `replicate registers the group with an always-on replication node, which then
stores and serves the group's logs so members who were offline catch up even
when every other member is away. The node receives the group's public key
and its replication key (which names the group's topic), never a key that
reads messages. The token comes from the node's operator (skein replication
token, on that node); registering twice is harmless.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				if _, err := cl.Groups.Replicate(ctx, &apiv1.ReplicateGroupRequest{Group: args[0], Token: args[1]}); err != nil {
					return rpcError("group replicate", err)
				}
				if f.json {
					return c.writeJSON(map[string]any{"group": args[0], "registered": true})
				}
				fmt.Fprintf(c.stdout, "registered %s with the replication node; see it there with: skein replication list\n", args[0])
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

// replicationCommand is the replication node's side.
func (c *cli) replicationCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replication",
		Short: "Replication-node commands (on a node run with replication.serve: true)",
		Long: `replication manages a replication node: a node with replication.serve: true
(skein init --preset replication) that stores and serves the groups members
register with it, without being able to read them.`,
	}
	cmd.AddCommand(c.replicationTokenCommand(), c.replicationListCommand(), c.replicationRemoveCommand())
	return cmd
}

func (c *cli) replicationTokenCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print the token members use to register groups with this node",
		Long: `token prints the registration token of this replication node: its peer id,
the addresses it listens on, and the registration secret. Whoever holds it
can make this node store and serve a group's (encrypted) logs: give it to
the members you serve, over a channel you trust. To revoke every token,
stop the node, delete replication.secret_file and start it again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.ReplicationNode.Token(ctx, &apiv1.ReplicationTokenRequest{})
				if err != nil {
					return rpcError("replication token", err)
				}
				if f.json {
					return c.writeJSON(map[string]any{"token": r.GetToken(), "peer": r.GetPeer(), "addrs": nonNil(r.GetAddrs())})
				}
				fmt.Fprintln(c.stdout, r.GetToken())
				fmt.Fprintln(c.stderr, "members register a group with: skein group replicate <group> <token>")
				if len(r.GetAddrs()) == 0 {
					fmt.Fprintln(c.stderr, "warning: the node listens on no address; members cannot reach it")
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func (c *cli) replicationListCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the groups registered with this replication node and their sync state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.ReplicationNode.List(ctx, &apiv1.ListReplicasRequest{})
				if err != nil {
					return rpcError("replication list", err)
				}
				if f.json {
					out := []map[string]any{}
					for _, rp := range r.GetReplicas() {
						sync := syncJSON(&apiv1.SyncStatusResponse{Groups: []*apiv1.GroupSync{rp.GetSync()}})
						regs := []map[string]any{}
						for _, g := range rp.GetRegistrations() {
							regs = append(regs, map[string]any{"peer": g.GetPeer(), "at": time.Unix(0, g.GetAt()).UTC().Format(time.RFC3339Nano)})
						}
						out = append(out, map[string]any{"group": rp.GetGroup(), "kind": rp.GetKind(),
							"entries":       replicaEntries(rp),
							"registered_by": rp.GetRegisteredBy(),
							"registered_at": time.Unix(0, rp.GetRegisteredAt()).UTC().Format(time.RFC3339Nano),
							"registrations": regs,
							"sync":          sync[0]})
					}
					return c.writeJSON(out)
				}
				if len(r.GetReplicas()) == 0 {
					fmt.Fprintln(c.stdout, "no groups registered yet; give members the token: skein replication token")
					return nil
				}
				for _, rp := range r.GetReplicas() {
					kind := rp.GetKind()
					if kind == "" {
						kind = "(not received yet)"
					}
					fmt.Fprintf(c.stdout, "%s  %s, %d entries, registered by %s %s ago", rp.GetGroup()[:12], kind, replicaEntries(rp),
						rp.GetRegisteredBy(), time.Since(time.Unix(0, rp.GetRegisteredAt())).Round(time.Second))
					if n := len(rp.GetRegistrations()); n > 1 {
						fmt.Fprintf(c.stdout, " (and %d more %s)", n-1, plural(n-1, "peer", "peers"))
					}
					fmt.Fprintln(c.stdout)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func (c *cli) replicationRemoveCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "remove <group>",
		Short: "Stop replicating a registered group (a prefix of its id) and forget its registration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.ReplicationNode.Remove(ctx, &apiv1.RemoveReplicaRequest{Group: args[0]})
				if err != nil {
					return rpcError("replication remove", err)
				}
				if f.json {
					return c.writeJSON(map[string]any{"group": r.GetGroup(), "removed": true})
				}
				fmt.Fprintf(c.stdout, "removed %s: no longer replicated here (members may register it again)\n", r.GetGroup())
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

// replicaEntries is the number of entries a replication node holds of a
// group: both logs.
func replicaEntries(rp *apiv1.Replica) uint64 {
	var n uint64
	for _, l := range rp.GetSync().GetLogs() {
		n += l.GetEntries()
	}
	return n
}
