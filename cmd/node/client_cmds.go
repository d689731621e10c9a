package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/crypto"
)

// clientFlags are the flags every client command has.
type clientFlags struct {
	socket    string
	tcp       string
	tokenFile string
	json      bool
}

func (f *clientFlags) add(cmd *cobra.Command, withJSON bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.socket, "socket", "", "client API socket of the node (default: api.socket, else <data_dir>/skein.sock)")
	fs.StringVar(&f.tcp, "api-tcp", "", "reach the node's client API on TCP host:port instead of the socket (needs --token-file)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token for --api-tcp")
	if withJSON {
		fs.BoolVar(&f.json, "json", false, "print JSON for scripts instead of text")
	}
}

// clientCommands returns the commands that talk to a running node over its
// client API.
func (c *cli) clientCommands() []*cobra.Command {
	return []*cobra.Command{
		c.idCommand(),
		c.groupCommand(),
		c.sendCommand(),
		c.messagesCommand(),
		c.contactCommand(),
		c.peersCommand(),
		c.syncCommand(),
		c.replicationCommand(),
		c.deviceCommand(), // device_cmds.go
	}
}

// dial connects to the running node the flags and config point at.
func (c *cli) dial(cmd *cobra.Command, f *clientFlags) (*client.Client, error) {
	if f.tcp != "" {
		if f.tokenFile == "" {
			return nil, errors.New("--api-tcp needs --token-file (the file holding the node's api token)")
		}
		tok, err := readToken(f.tokenFile)
		if err != nil {
			return nil, err
		}
		return client.DialTCP(f.tcp, tok)
	}
	if f.socket != "" {
		return client.Dial(f.socket)
	}
	// The socket from the config (api.socket, node.data_dir); a config that
	// does not load (e.g. a plugin binary missing) must not stop a client,
	// so fall back to the flag or the default data directory.
	if cfg, _, err := c.load(cmd); err == nil {
		if cfg.API.Socket != "" {
			return client.Dial(cfg.API.Socket)
		}
		return client.Dial(cfg.Node.DataDir)
	}
	dir := c.dataDir
	if dir == "" {
		dir = os.Getenv("SKEIN_NODE__DATA_DIR")
	}
	if dir == "" {
		dir = "~/.skein"
	}
	return client.Dial(dir)
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// rpcError turns a gRPC status into the node's message, without the
// "rpc error: code = ..." noise.
func rpcError(what string, err error) error {
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable:
			return fmt.Errorf("%s: the node stopped answering (%s)", what, st.Message())
		case codes.Unauthenticated:
			return fmt.Errorf("%s: refused by the node: %s", what, st.Message())
		}
		return fmt.Errorf("%s: %s", what, st.Message())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// signalContext is cmd's context, cancelled by SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// short returns the fingerprint of a hex public key, or the hex cut short.
func short(hexKey string) string {
	if b, err := hex.DecodeString(hexKey); err == nil {
		if k, err := crypto.ParsePublicKey(b); err == nil {
			return k.Fingerprint()
		}
	}
	if len(hexKey) > 16 {
		return hexKey[:16]
	}
	return hexKey
}

// withClient runs fn with a connection to the node.
func (c *cli) withClient(cmd *cobra.Command, f *clientFlags, fn func(ctx context.Context, cl *client.Client) error) error {
	cl, err := c.dial(cmd, f)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := signalContext(cmd)
	defer cancel()
	return fn(ctx, cl)
}

// ---- id ----

func (c *cli) idCommand() *cobra.Command {
	var f clientFlags
	var addrs bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Show this node's account, device and network peer id",
		Long: `id shows this node's account and device keys and fingerprints, its network
peer id and the addresses it listens on. --addrs prints only the addresses,
one per line, each ending in /p2p/<peer id>: what another node gives to
skein peers connect, e.g.
  skein peers connect --data-dir ~/.skein-bob "$(skein id --addrs | head -1)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				a, err := cl.Account.Get(ctx, &apiv1.GetAccountRequest{})
				if err != nil {
					return rpcError("id", err)
				}
				if addrs {
					if len(a.GetAddrs()) == 0 {
						return errors.New("id: the node listens on no address: no other node can dial it")
					}
					for _, addr := range a.GetAddrs() {
						if !strings.Contains(addr, "/p2p/") { // a network that leaves it out
							addr += "/p2p/" + a.GetPeerId()
						}
						fmt.Fprintln(c.stdout, addr)
					}
					return nil
				}
				if f.json {
					return c.writeJSON(map[string]any{
						"account": a.GetAccount(), "account_fingerprint": a.GetAccountFingerprint(),
						"device": a.GetDevice(), "device_fingerprint": a.GetDeviceFingerprint(),
						"peer_id": a.GetPeerId(), "addrs": a.GetAddrs(),
					})
				}
				fmt.Fprintf(c.stdout, "account  %s\n         %s\ndevice   %s\n         %s\npeer id  %s\n",
					a.GetAccountFingerprint(), a.GetAccount(), a.GetDeviceFingerprint(), a.GetDevice(), a.GetPeerId())
				for _, addr := range a.GetAddrs() {
					fmt.Fprintf(c.stdout, "address  %s\n", addr)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&addrs, "addrs", false, "print only the node's dialable addresses (multiaddr/p2p/<peer id>), one per line")
	return cmd
}

// ---- group ----

func groupJSON(g *apiv1.GroupInfo) map[string]any {
	return map[string]any{"id": g.GetId(), "name": g.GetName(), "kind": g.GetKind(), "epoch": g.GetEpoch(),
		"members": g.GetMemberCount(), "left": g.GetLeft()}
}

func (c *cli) printGroup(g *apiv1.GroupInfo) {
	name := g.GetName()
	if name == "" {
		name = "-"
	}
	state := ""
	if g.GetLeft() {
		state = "  (left)"
	}
	fmt.Fprintf(c.stdout, "%-12s  %s  %-7s  %s%s\n", g.GetId()[:12], name, g.GetKind(), count(int(g.GetMemberCount()), "member", "members"), state)
}

func (c *cli) groupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create, join and manage groups on the running node",
		Long: `group manages the groups of the running node. A <group> is the local name
given at create or join, or a prefix of the group id (see skein group list).`,
	}
	cmd.AddCommand(c.groupCreateCommand(), c.groupInviteCommand(), c.groupJoinCommand(),
		c.groupMembersCommand(), c.groupRemoveCommand(), c.groupLeaveCommand(), c.groupListCommand(),
		c.groupReplicateCommand())
	return cmd
}

func (c *cli) groupCreateCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create a group with you as its only member (name is local, never shared)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				g, err := cl.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: args[0]})
				if err != nil {
					return rpcError("group create", err)
				}
				if f.json {
					return c.writeJSON(groupJSON(g))
				}
				fmt.Fprintf(c.stdout, "created group %s (%s)\ninvite someone: skein group invite %s\n", g.GetName(), g.GetId(), g.GetName())
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func (c *cli) groupInviteCommand() *cobra.Command {
	var f clientFlags
	var qr bool
	cmd := &cobra.Command{
		Use:   "invite <group>",
		Short: "Make an invitation token for one account (valid until the next member removal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				inv, err := cl.Groups.Invite(ctx, &apiv1.InviteRequest{Group: args[0]})
				if err != nil {
					return rpcError("group invite", err)
				}
				if f.json {
					return c.writeJSON(map[string]any{"token": inv.GetToken(), "qr": inv.GetQr()})
				}
				if qr && inv.GetQr() != "" {
					fmt.Fprintln(c.stdout, inv.GetQr())
				}
				fmt.Fprintln(c.stdout, inv.GetToken())
				fmt.Fprintln(c.stderr, "give this token to the invitee over a channel you trust; they run: skein group join <token>")
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&qr, "qr", false, "also draw the token as a QR code")
	return cmd
}

func (c *cli) groupJoinCommand() *cobra.Command {
	var f clientFlags
	var name string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "join <token>",
		Short: "Join a group with an invitation token (waits until a member is reachable)",
		Long: `Join a group with an invitation token (waits until a member is reachable).

It returns once this device is written into the group. Each member reads
that a moment later, when the entry reaches its node; what a member sends
before then is sealed for the members it knew and stays closed to this
device. To be sure a member's next message is readable here, wait until
its 'skein group members' lists this account.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				if !f.json {
					fmt.Fprintln(c.stderr, "joining: waiting for a member of the group to be reachable…")
				}
				g, err := cl.Groups.Join(ctx, &apiv1.JoinGroupRequest{Token: args[0], Name: name})
				if err != nil {
					if status.Code(err) == codes.DeadlineExceeded {
						return fmt.Errorf("group join: gave up after %s: %s; is a member's node running and connected (skein peers), and is the invitation still valid?", timeout, status.Convert(err).Message())
					}
					return rpcError("group join", err)
				}
				if f.json {
					return c.writeJSON(groupJSON(g))
				}
				fmt.Fprintf(c.stdout, "joined group %s (%s), %s\n", nameOr(g), g.GetId(), count(int(g.GetMemberCount()), "member", "members"))
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&name, "name", "", "local name for the group")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up when no member is reachable for this long (0: wait until interrupted)")
	return cmd
}

func nameOr(g *apiv1.GroupInfo) string {
	if g.GetName() != "" {
		return g.GetName()
	}
	return g.GetId()[:12]
}

func (c *cli) groupMembersCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "members <group>",
		Short: "List the group's member accounts and their devices",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				ms, err := cl.Groups.Members(ctx, &apiv1.MembersRequest{Group: args[0]})
				if err != nil {
					return rpcError("group members", err)
				}
				if f.json {
					out := []map[string]any{}
					for _, m := range ms.GetMembers() {
						out = append(out, map[string]any{"account": m.GetAccount(), "fingerprint": m.GetFingerprint(), "devices": m.GetDevices(), "self": m.GetSelf()})
					}
					return c.writeJSON(out)
				}
				for _, m := range ms.GetMembers() {
					self := ""
					if m.GetSelf() {
						self = "  (you)"
					}
					fmt.Fprintf(c.stdout, "%s  %s  %s%s\n", m.GetFingerprint(), m.GetAccount(), count(len(m.GetDevices()), "device", "devices"), self)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func (c *cli) groupRemoveCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "remove <group> <member>",
		Short: "Remove a member (account key or fingerprint prefix); the group moves to a new epoch",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				g, err := cl.Groups.RemoveMember(ctx, &apiv1.RemoveMemberRequest{Group: args[0], Member: args[1]})
				if err != nil {
					return rpcError("group remove", err)
				}
				if f.json {
					return c.writeJSON(groupJSON(g))
				}
				fmt.Fprintf(c.stdout, "removed %s from %s; new epoch %s; %s left\n", args[1], nameOr(g), short(g.GetEpoch()), count(int(g.GetMemberCount()), "member", "members"))
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

func (c *cli) groupLeaveCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "leave <group>",
		Short: "Leave a group (its history stays readable here)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				if _, err := cl.Groups.Leave(ctx, &apiv1.LeaveGroupRequest{Group: args[0]}); err != nil {
					return rpcError("group leave", err)
				}
				fmt.Fprintf(c.stdout, "left %s\n", args[0])
				return nil
			})
		},
	}
	f.add(cmd, false)
	return cmd
}

func (c *cli) groupListCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the node's groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				gs, err := cl.Groups.List(ctx, &apiv1.ListGroupsRequest{})
				if err != nil {
					return rpcError("group list", err)
				}
				if f.json {
					out := []map[string]any{}
					for _, g := range gs.GetGroups() {
						out = append(out, groupJSON(g))
					}
					return c.writeJSON(out)
				}
				if len(gs.GetGroups()) == 0 {
					fmt.Fprintln(c.stdout, "no groups yet: skein group create <name>, or skein group join <token>")
				}
				for _, g := range gs.GetGroups() {
					c.printGroup(g)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	return cmd
}

// ---- send / messages ----

func (c *cli) sendCommand() *cobra.Command {
	var f clientFlags
	var lines bool
	cmd := &cobra.Command{
		Use:   "send <group> [text...]",
		Short: "Send a message (the text, or stdin when the text is \"-\" or absent)",
		Long: `send sends one message: the text, or stdin when the text is "-" or absent.

With --lines, each line of stdin is a message (empty lines are skipped),
sent pipelined over one stream: the node writes them in order, many per
write, and acknowledges each once it is durable. Progress goes to stderr;
with --json, one JSON object per line read goes to stdout as its ack
arrives ({"line", "cid", "group", "time", "sent_at"} or {"line", "code",
"error"}). A line the node refuses does not stop the others; send then
exits non-zero, naming how many failed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines {
				if len(args) > 2 || len(args) == 2 && args[1] != "-" {
					return errors.New("send --lines: the messages come from stdin, give no text")
				}
				return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
					return c.sendLines(ctx, cl, args[0], cmd.InOrStdin(), f.json)
				})
			}
			var body []byte
			if len(args) == 1 || len(args) == 2 && args[1] == "-" {
				// One byte over the limit (and the newline dropped below) is
				// enough for the node to refuse it with the limit and the
				// group named: the limit is checked there, for every client.
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), apiv1.MaxMessageBytes+2))
				if err != nil {
					return fmt.Errorf("send: read stdin: %w", err)
				}
				body = []byte(strings.TrimSuffix(string(b), "\n"))
			} else {
				body = []byte(strings.Join(args[1:], " "))
			}
			if len(body) == 0 {
				return errors.New("send: empty message")
			}
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				m, err := cl.Messages.Send(ctx, &apiv1.SendRequest{Group: args[0], Body: body})
				if err != nil {
					return rpcError("send", err)
				}
				if f.json {
					return c.writeJSON(messageJSON(m))
				}
				fmt.Fprintf(c.stdout, "sent %s\n", m.GetCid())
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&lines, "lines", false, "send each line of stdin as a message, pipelined (progress on stderr)")
	return cmd
}

// sendLines sends each non-empty line of in as a message over one
// client.Sender, printing acks (with asJSON) as they arrive in order.
func (c *cli) sendLines(ctx context.Context, cl *client.Client, group string, in io.Reader, asJSON bool) error {
	s, err := cl.NewSender(ctx)
	if err != nil {
		return rpcError("send", err)
	}
	type sent struct {
		line int
		p    *client.PendingSend
	}
	queue := make(chan sent, apiv1.MaxSendsInFlight)
	var acked, failed int
	start := time.Now()
	progress := c.progressEvery(time.Second, func() string {
		return fmt.Sprintf("sent %d (%d failed), %.0f/s", acked, failed, float64(acked)/time.Since(start).Seconds())
	})
	enc := json.NewEncoder(c.stdout)
	done := make(chan error, 1)
	go func() {
		for q := range queue {
			ack, err := q.p.Wait(ctx)
			if err != nil && (errors.Is(err, client.ErrSenderClosed) || ctx.Err() != nil) {
				done <- rpcError("send", err) // the stream's, not the message's
				for range queue {
				}
				return
			}
			progress.mu.Lock()
			if err != nil {
				failed++
			} else {
				acked++
			}
			progress.mu.Unlock()
			switch {
			case asJSON && err != nil:
				st := status.Convert(err)
				enc.Encode(map[string]any{"line": q.line, "code": st.Code().String(), "error": st.Message()}) //nolint:errcheck
			case asJSON:
				enc.Encode(map[string]any{"line": q.line, "cid": ack.GetCid(), "group": ack.GetGroup(), "time": ack.GetTime(), //nolint:errcheck
					"sent_at": time.Unix(0, ack.GetSentAt()).UTC().Format(time.RFC3339Nano)})
			case err != nil:
				fmt.Fprintf(c.stderr, "send: line %d: %s\n", q.line, status.Convert(err).Message())
			}
		}
		done <- nil
	}()
	r := bufio.NewReaderSize(in, 64<<10)
	n := 0
	var readErr error
	for {
		line, err := readLine(r, apiv1.MaxMessageBytes+1)
		if err != nil {
			if err != io.EOF {
				readErr = fmt.Errorf("send: read stdin after line %d: %w", n, err)
			}
			break
		}
		n++
		if len(line) == 0 {
			continue
		}
		p, err := s.Send(ctx, group, line)
		if err != nil {
			readErr = rpcError("send", err)
			break
		}
		queue <- sent{line: n, p: p}
	}
	close(queue)
	ackErr := <-done
	closeErr := s.Close(ctx)
	progress.stop()
	fmt.Fprintf(c.stderr, "sent %d messages (%d failed) in %s, %.0f/s\n", acked, failed,
		time.Since(start).Round(time.Millisecond), float64(acked)/time.Since(start).Seconds())
	switch {
	case readErr != nil:
		return readErr
	case ackErr != nil:
		return ackErr
	case closeErr != nil:
		return rpcError("send", closeErr)
	case failed > 0:
		return fmt.Errorf("send: %d of %d messages failed", failed, failed+acked)
	}
	return nil
}

// readLine reads one line without its newline, keeping at most max
// bytes of it (one byte over the limit is enough for the node to refuse it
// with the limit and the group named). io.EOF: no more lines.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line) < max {
			line = append(line, chunk[:min(len(chunk), max-len(line))]...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(chunk) == 0 && line == nil:
			return nil, io.EOF
		case err != nil && err != io.EOF:
			return nil, err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
}

// progressLine prints a line on stderr at an interval until stopped.
type progressLine struct {
	mu   sync.Mutex // held while line runs; the caller's counters under it
	quit chan struct{}
	done chan struct{}
}

func (c *cli) progressEvery(d time.Duration, line func() string) *progressLine {
	p := &progressLine{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.mu.Lock()
				l := line()
				p.mu.Unlock()
				fmt.Fprintln(c.stderr, l)
			case <-p.quit:
				return
			}
		}
	}()
	return p
}

func (p *progressLine) stop() {
	close(p.quit)
	<-p.done
}

func messageJSON(m *apiv1.Message) map[string]any {
	out := map[string]any{
		"cid": m.GetCid(), "group": m.GetGroup(), "sender": m.GetSender(), "account": m.GetAccount(),
		"sent_at": time.Unix(0, m.GetSentAt()).UTC().Format(time.RFC3339Nano), "time": m.GetTime(),
		"held_elsewhere": m.GetHeldElsewhere(),
	}
	if utf8.Valid(m.GetBody()) {
		out["body"] = string(m.GetBody())
	} else {
		out["body_base64"] = base64.StdEncoding.EncodeToString(m.GetBody())
	}
	return out
}

func (c *cli) printMessage(m *apiv1.Message) {
	body := string(m.GetBody())
	if !utf8.Valid(m.GetBody()) {
		body = fmt.Sprintf("<%d bytes of binary>", len(m.GetBody()))
	}
	// Keep a message on one visual block; strip terminal control bytes a
	// sender could use to rewrite the screen.
	body = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, body)
	ts := time.Unix(0, m.GetSentAt()).Local().Format("2006-01-02 15:04:05")
	fmt.Fprintf(c.stdout, "%s  %s  %s\n", ts, short(m.GetAccount()), strings.ReplaceAll(body, "\n", "\n"+strings.Repeat(" ", 21)))
}

func (c *cli) messagesCommand() *cobra.Command {
	var f clientFlags
	var follow, reverse bool
	var since, until string
	var limit uint32
	cmd := &cobra.Command{
		Use:   "messages <group>",
		Short: "Print the group's messages in order; --follow keeps printing new ones",
		Long: `messages prints the group's delivered messages in the group's total order
(the same on every member). --since and --until take message CIDs (as printed by
--json or by send). --follow prints the listed messages then new ones as they
arrive, until interrupted. --json prints one JSON object per line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow && (reverse || until != "" || limit > 0) {
				return errors.New("messages: --follow cannot be combined with --reverse, --until or --limit")
			}
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				print := func(m *apiv1.Message) {
					if f.json {
						b, _ := json.Marshal(messageJSON(m))
						fmt.Fprintf(c.stdout, "%s\n", b)
						return
					}
					c.printMessage(m)
				}
				if follow {
					stream, err := cl.Messages.Subscribe(ctx, &apiv1.SubscribeRequest{Group: args[0], Replay: true, Since: since})
					if err != nil {
						return rpcError("messages", err)
					}
					for {
						m, err := stream.Recv()
						if err != nil {
							if ctx.Err() != nil || errors.Is(err, io.EOF) {
								return nil
							}
							return rpcError("messages", err)
						}
						print(m)
					}
				}
				list, err := cl.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: args[0], Since: since, Until: until, Reverse: reverse, Limit: limit})
				if err != nil {
					return rpcError("messages", err)
				}
				for _, m := range list.GetMessages() {
					print(m)
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	fs := cmd.Flags()
	fs.BoolVarP(&follow, "follow", "f", false, "keep printing new messages until interrupted")
	fs.StringVar(&since, "since", "", "only messages after this message CID")
	fs.StringVar(&until, "until", "", "only messages up to this message CID (inclusive)")
	fs.BoolVar(&reverse, "reverse", false, "newest first")
	fs.Uint32Var(&limit, "limit", 0, "at most this many messages (0: all)")
	return cmd
}

// ---- contacts ----

func (c *cli) contactCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contact",
		Short: "Make contacts: share your token, add someone's, accept their request",
		Long: `A contact is a two-person group derived from both accounts.
  1. A: skein contact share            -> a contact token; give it to B
  2. B: skein contact add <token>      -> a request token; give it back to A
  3. A: skein contact accept <request>
Both then hold the same contact group (skein group list).`,
	}
	var fs, fa, fc, fl clientFlags
	var shareName, addName string
	share := &cobra.Command{
		Use:   "share",
		Short: "Print your contact token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &fs, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Contacts.Share(ctx, &apiv1.ShareContactRequest{Name: shareName})
				if err != nil {
					return rpcError("contact share", err)
				}
				if fs.json {
					return c.writeJSON(map[string]any{"token": r.GetToken(), "qr": r.GetQr()})
				}
				fmt.Fprintln(c.stdout, r.GetToken())
				return nil
			})
		},
	}
	fs.add(share, true)
	share.Flags().StringVar(&shareName, "name", "", "the name the other side sees")
	add := &cobra.Command{
		Use:   "add <token>",
		Short: "Add a contact from their token; prints the request token to give back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &fa, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Contacts.Add(ctx, &apiv1.AddContactRequest{Token: args[0], Name: addName})
				if err != nil {
					return rpcError("contact add", err)
				}
				if fa.json {
					return c.writeJSON(map[string]any{"request_token": r.GetRequestToken(), "group": groupJSON(r.GetGroup())})
				}
				fmt.Fprintln(c.stdout, r.GetRequestToken())
				fmt.Fprintf(c.stderr, "contact group %s opened; give the token above to %s, who runs: skein contact accept <token>\n", nameOr(r.GetGroup()), nameOr(r.GetGroup()))
				return nil
			})
		},
	}
	fa.add(add, true)
	add.Flags().StringVar(&addName, "name", "", "the name the other side sees")
	accept := &cobra.Command{
		Use:   "accept <request>",
		Short: "Accept a contact request token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &fc, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Contacts.Accept(ctx, &apiv1.AcceptContactRequest{RequestToken: args[0]})
				if err != nil {
					return rpcError("contact accept", err)
				}
				if fc.json {
					return c.writeJSON(groupJSON(r.GetGroup()))
				}
				fmt.Fprintf(c.stdout, "contact %s accepted (group %s)\n", nameOr(r.GetGroup()), r.GetGroup().GetId())
				return nil
			})
		},
	}
	fc.add(accept, true)
	list := &cobra.Command{
		Use:   "list",
		Short: "List your contacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &fl, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Contacts.List(ctx, &apiv1.ListContactsRequest{})
				if err != nil {
					return rpcError("contact list", err)
				}
				if fl.json {
					out := []map[string]any{}
					for _, g := range r.GetContacts() {
						out = append(out, groupJSON(g))
					}
					return c.writeJSON(out)
				}
				for _, g := range r.GetContacts() {
					c.printGroup(g)
				}
				return nil
			})
		},
	}
	fl.add(list, true)
	cmd.AddCommand(share, add, accept, list)
	return cmd
}

// ---- peers ----

func (c *cli) peersCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the peers the node is connected to, and how each was found",
		Long: `peers lists the connected peers: id, how the node came to know each
(found by: mdns or another discovery plugin, dht for a group's
rendezvous, bootstrap, manual for peers connect; "-" when the peer
dialled this node or the network connected it by itself), and addresses.
Sources are recorded since the node started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Peers.List(ctx, &apiv1.ListPeersRequest{})
				if err != nil {
					return rpcError("peers", err)
				}
				if f.json {
					out := []map[string]any{}
					for _, p := range r.GetPeers() {
						out = append(out, map[string]any{"id": p.GetId(), "addrs": p.GetAddrs(), "found_by": nonNil(p.GetFoundBy())})
					}
					return c.writeJSON(out)
				}
				if len(r.GetPeers()) == 0 {
					fmt.Fprintln(c.stdout, "no connected peers")
				}
				for _, p := range r.GetPeers() {
					found := strings.Join(p.GetFoundBy(), ",")
					if found == "" {
						found = "-"
					}
					fmt.Fprintf(c.stdout, "%s  %-9s  %s\n", p.GetId(), found, strings.Join(p.GetAddrs(), " "))
				}
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.AddCommand(c.peersConnectCommand())
	return cmd
}

func (c *cli) peersConnectCommand() *cobra.Command {
	var f clientFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "connect <multiaddr/p2p/peer-id>",
		Short: "Connect to a peer (kept connected, and dialled again after a restart)",
		Long: `connect dials a peer given as a multiaddr ending in /p2p/<peer id>, as
skein id prints it on that node. Once connected, the node keeps the peer
connected and dials it again after a restart (its data directory remembers it).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				r, err := cl.Peers.Connect(ctx, &apiv1.ConnectPeerRequest{Addr: args[0]})
				if err != nil {
					return rpcError("peers connect", err)
				}
				if f.json {
					return c.writeJSON(map[string]any{"id": r.GetPeer().GetId(), "addrs": nonNil(r.GetPeer().GetAddrs())})
				}
				fmt.Fprintf(c.stdout, "connected to %s\n", r.GetPeer().GetId())
				return nil
			})
		},
	}
	f.add(cmd, true)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up dialling after this long")
	return cmd
}

// ---- sync ----

func (c *cli) syncCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Replication state of the node's groups",
	}
	var f clientFlags
	var wait time.Duration
	status := &cobra.Command{
		Use:   "status [group]",
		Short: "Per group: local heads, heads peers announced, entries missing, last sync",
		Long: `status shows, for each group (or the one named), both logs' local heads, the
heads peers announced, how many announced entries are still missing here, and
when remote heads were last merged. A group is "in sync" only when nothing is
missing, a peer that shares it is connected and a sync with one completed;
otherwise it says "behind", "no peer reachable since ..." or "never synced".
--wait shows progress (entries and bytes fetched, rate, time left) until
every group is in sync, and fails with the reason if the duration passes.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			}
			return c.withClient(cmd, &f, func(ctx context.Context, cl *client.Client) error {
				get := func() (*apiv1.SyncStatusResponse, error) {
					r, err := cl.Sync.Status(ctx, &apiv1.SyncStatusRequest{Group: ref})
					if err != nil {
						return nil, rpcError("sync status", err)
					}
					return r, nil
				}
				r, err := get()
				if err != nil {
					return err
				}
				if wait > 0 {
					if r, err = c.waitSynced(ctx, r, get, wait); err != nil {
						return err
					}
				}
				if f.json {
					return c.writeJSON(syncJSON(r))
				}
				c.printSync(r)
				return nil
			})
		},
	}
	f.add(status, true)
	status.Flags().DurationVar(&wait, "wait", 0, "show progress until every group is in sync; fail with the reason after this long")
	cmd.AddCommand(status)
	return cmd
}

// waitSynced prints a progress line on stderr until every group is in
// sync; when the wait is over first it fails, saying why for each group.
func (c *cli) waitSynced(ctx context.Context, r *apiv1.SyncStatusResponse, get func() (*apiv1.SyncStatusResponse, error), wait time.Duration) (*apiv1.SyncStatusResponse, error) {
	start := time.Now()
	deadline := start.Add(wait)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	first := totalsOf(r)
	for {
		t := totalsOf(r)
		if t.notInSync == 0 {
			if got := t.fetched - first.fetched; got > 0 {
				fmt.Fprintf(c.stderr, "\rsynced: %d entries (%s) fetched in %s%20s\n", got, sizeText(t.fetchedByte-first.fetchedByte),
					time.Since(start).Round(100*time.Millisecond), "")
			}
			return r, nil
		}
		fmt.Fprintf(c.stderr, "\r%s   ", progressText(r, first, t, time.Since(start)))
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintln(c.stderr)
			var why []string
			for _, g := range r.GetGroups() {
				if !g.GetInSync() {
					why = append(why, groupLabel(g)+": "+stateText(g, time.Now()))
				}
			}
			err := fmt.Errorf("sync status --wait: not in sync after %s: %s", wait, strings.Join(why, "; "))
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
			}
			return r, err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		var err error
		if r, err = get(); err != nil {
			return nil, err
		}
	}
}

func syncJSON(r *apiv1.SyncStatusResponse) []map[string]any {
	out := []map[string]any{}
	for _, g := range r.GetGroups() {
		logs := []map[string]any{}
		for _, l := range g.GetLogs() {
			logs = append(logs, map[string]any{"log": l.GetLog(), "local_heads": nonNil(l.GetLocalHeads()),
				"remote_heads": nonNil(l.GetRemoteHeads()), "missing": l.GetMissing(), "given_up": l.GetGivenUp(), "entries": l.GetEntries(),
				"missing_entries": l.GetMissingEntries(), "fetched": l.GetFetched(), "fetched_bytes": l.GetFetchedBytes(),
				"unheld": l.GetUnheld()})
		}
		var last, lastRdv, lastReach any
		if g.GetLastSync() != 0 {
			last = time.Unix(0, g.GetLastSync()).UTC().Format(time.RFC3339Nano)
		}
		if g.GetLastRendezvous() != 0 {
			lastRdv = time.Unix(0, g.GetLastRendezvous()).UTC().Format(time.RFC3339Nano)
		}
		if g.GetLastReachable() != 0 {
			lastReach = time.Unix(0, g.GetLastReachable()).UTC().Format(time.RFC3339Nano)
		}
		rdv := map[string]any{"found": g.GetRendezvousFound(), "last": lastRdv, "error": g.GetRendezvousError()}
		if _, note := rendezvousNote(g.GetRendezvousError()); note != "" {
			rdv["note"] = note
		}
		out = append(out, map[string]any{"group": g.GetGroup(), "name": g.GetName(), "in_sync": g.GetInSync(),
			"state": g.GetState(), "reachable": g.GetReachable(), "last_reachable": lastReach,
			"last_sync": last, "peers": nonNil(g.GetPeers()), "logs": logs, "rendezvous": rdv})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *cli) printSync(r *apiv1.SyncStatusResponse) {
	if len(r.GetGroups()) == 0 {
		fmt.Fprintln(c.stdout, "no groups")
	}
	now := time.Now()
	notes := map[string]bool{}
	var noteOrder []string
	for _, g := range r.GetGroups() {
		last := "never"
		if g.GetLastSync() != 0 {
			last = now.Sub(time.Unix(0, g.GetLastSync())).Round(time.Second).String() + " ago"
		}
		name := g.GetName()
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(c.stdout, "%s  %s  %s, last sync %s, %s\n", g.GetGroup()[:12], name, stateText(g, now), last, count(len(g.GetPeers()), "peer", "peers"))
		for _, l := range g.GetLogs() {
			line := fmt.Sprintf("  %-8s  %s local, %s announced, %d missing, %s", l.GetLog(),
				count(len(l.GetLocalHeads()), "head", "heads"), count(len(l.GetRemoteHeads()), "head", "heads"), l.GetMissing(),
				count(int(l.GetEntries()), "entry", "entries"))
			if n := l.GetGivenUp(); n > 0 {
				line += fmt.Sprintf(", %d given up (no peer served them)", n)
			}
			if l.GetFetched() > 0 {
				line += fmt.Sprintf(", %d fetched (%s)", l.GetFetched(), sizeText(l.GetFetchedBytes()))
			}
			fmt.Fprintln(c.stdout, line)
		}
		if n := unheldOf(g); n > 0 {
			fmt.Fprintf(c.stdout, "  %s not yet on any other node\n", count(int(n), "of your messages", "of your messages"))
		}
		if g.GetLastRendezvous() != 0 {
			line := fmt.Sprintf("  %-8s  %s found, last round %s ago", "rdv", count(int(g.GetRendezvousFound()), "peer", "peers"),
				now.Sub(time.Unix(0, g.GetLastRendezvous())).Round(time.Second))
			if short, note := rendezvousNote(g.GetRendezvousError()); short != "" {
				line += ": " + short
				if note != "" && !notes[note] {
					notes[note] = true
					noteOrder = append(noteOrder, note)
				}
			}
			fmt.Fprintln(c.stdout, line)
		}
	}
	for _, n := range noteOrder {
		fmt.Fprintln(c.stdout, "\n"+n)
	}
}

// count is "1 member", "2 members".
func count(n int, one, many string) string { return fmt.Sprintf("%d %s", n, plural(n, one, many)) }
