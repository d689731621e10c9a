package api_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/peersource"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
)

const waitLimit = 30 * time.Second

func newMessenger(tb testing.TB, sn *simnet.Network, name string) *messenger.Messenger {
	tb.Helper()
	nd, err := sn.AddNode(name)
	if err != nil {
		tb.Fatal(err)
	}
	ks, err := crypto.OpenKeystore(filepath.Join(tb.TempDir(), "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ks.Close() })
	m, err := messenger.New(context.Background(), messenger.Config{Keystore: ks, Store: memstore.New(), Network: nd})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// serve starts an API server for m in a fresh data directory.
func serve(tb testing.TB, m *messenger.Messenger, cfg api.Config) (*api.Server, string) {
	tb.Helper()
	dir := tb.TempDir()
	if cfg.Socket == "" {
		cfg.Socket = api.SocketPath(dir)
	}
	srv, err := api.Listen(m, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return srv, dir
}

func TestSocketNameMatchesClient(t *testing.T) {
	if api.SocketName != client.SocketName {
		t.Fatalf("api.SocketName %q != client.SocketName %q", api.SocketName, client.SocketName)
	}
}

func TestSocketMode0600(t *testing.T) {
	sn := simnet.New()
	defer sn.Close()
	srv, _ := serve(t, newMessenger(t, sn, "a"), api.Config{})
	fi, err := os.Stat(srv.Socket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s is not a socket: %v", srv.Socket(), fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode %o, want 600", perm)
	}
}

func TestEndToEndOverSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	ma, mb := newMessenger(t, sn, "a"), newMessenger(t, sn, "b")
	sn.ConnectAll()
	_, dirA := serve(t, ma, api.Config{})
	_, dirB := serve(t, mb, api.Config{})
	ca, err := client.Dial(dirA)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := client.Dial(filepath.Join(dirB, client.SocketName)) // by socket path
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()

	acct, err := ca.Account.Get(ctx, &apiv1.GetAccountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if acct.GetAccount() != ma.Identity().AccountKey().String() || acct.GetPeerId() != "a" {
		t.Fatalf("account = %+v", acct)
	}
	gi, err := ca.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "team"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ca.Groups.Invite(ctx, &apiv1.InviteRequest{Group: "team"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inv.GetToken(), "skein1-") || inv.GetQr() == "" {
		t.Fatalf("invite = %q / qr %d bytes", inv.GetToken(), len(inv.GetQr()))
	}
	if _, err := cb.Groups.Join(ctx, &apiv1.JoinGroupRequest{Token: inv.GetToken(), Name: "work"}); err != nil {
		t.Fatal(err)
	}
	// b subscribes (by its own name for the group), a sends.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	stream, err := cb.Messages.Subscribe(sctx, &apiv1.SubscribeRequest{Group: "work"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	sent, err := ca.Messages.Send(ctx, &apiv1.SendRequest{Group: gi.GetId()[:10], Body: []byte("hello b")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if string(got.GetBody()) != "hello b" || got.GetCid() != sent.GetCid() || got.GetAccount() != acct.GetAccount() {
		t.Fatalf("streamed %+v, sent %+v", got, sent)
	}
	// List with limit and reverse.
	if _, err := ca.Messages.Send(ctx, &apiv1.SendRequest{Group: "team", Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	list, err := cb.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "work", Reverse: true, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetMessages()) != 1 || string(list.GetMessages()[0].GetBody()) != "second" {
		t.Fatalf("reverse limit 1 = %v", list.GetMessages())
	}
	since, err := cb.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "work", Since: sent.GetCid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(since.GetMessages()) != 1 || string(since.GetMessages()[0].GetBody()) != "second" {
		t.Fatalf("since first = %v", since.GetMessages())
	}
	// b's join reaches a by replication, in its own time: a lists b once
	// it has b's log.
	waitUntil(t, "a to list b as a member", func() bool {
		members, err := ca.Groups.Members(ctx, &apiv1.MembersRequest{Group: "team"})
		if err != nil {
			t.Fatalf("members: %v", err)
		}
		return len(members.GetMembers()) == 2
	})
	peers, err := ca.Peers.List(ctx, &apiv1.ListPeersRequest{})
	if err != nil || len(peers.GetPeers()) != 1 || peers.GetPeers()[0].GetId() != "b" {
		t.Fatalf("peers = %v, %v", peers, err)
	}
	st, err := ca.Sync.Status(ctx, &apiv1.SyncStatusRequest{Group: "team"})
	if err != nil || len(st.GetGroups()) != 1 || len(st.GetGroups()[0].GetLogs()) != 2 {
		t.Fatalf("sync status = %v, %v", st, err)
	}

	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"unknown group", func() error {
			_, err := ca.Messages.Send(ctx, &apiv1.SendRequest{Group: "nope", Body: []byte("x")})
			return err
		}, codes.NotFound},
		{"bad token", func() error {
			_, err := ca.Groups.Join(ctx, &apiv1.JoinGroupRequest{Token: "not-a-token"})
			return err
		}, codes.InvalidArgument},
		{"bad since", func() error {
			_, err := ca.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "team", Since: "zzz"})
			return err
		}, codes.InvalidArgument},
		{"empty body", func() error {
			_, err := ca.Messages.Send(ctx, &apiv1.SendRequest{Group: "team"})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.code {
				t.Fatalf("code = %v, want %v", got, tc.code)
			}
		})
	}
}

func TestBearerTokenOnTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	m := newMessenger(t, sn, "a")
	const token = "s3cret-token-for-tests"
	srv, _ := serve(t, m, api.Config{TCP: "127.0.0.1:0", Token: token})
	addr := srv.TCPAddr().String()

	tests := []struct {
		name  string
		token string // "" sends none
		want  codes.Code
	}{
		{"right token", token, codes.OK},
		{"no token", "", codes.Unauthenticated},
		{"wrong token", "s3cret-token-for-test", codes.Unauthenticated},
		{"longer token", token + "x", codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
			if tc.token != "" {
				opts = append(opts, grpc.WithPerRPCCredentials(staticToken(tc.token)))
			}
			conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = apiv1.NewAccountClient(conn).Get(ctx, &apiv1.GetAccountRequest{})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
			}
			// Streams are guarded too.
			if tc.want != codes.OK {
				s, err := apiv1.NewMessagesClient(conn).Subscribe(ctx, &apiv1.SubscribeRequest{Group: "x"})
				if err == nil {
					_, err = s.Recv()
				}
				if got := status.Code(err); got != codes.Unauthenticated {
					t.Fatalf("stream code = %v, want Unauthenticated", got)
				}
			}
		})
	}
	// The client library's DialTCP sends the token.
	c, err := client.DialTCP(addr, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Account.Get(ctx, &apiv1.GetAccountRequest{}); err != nil {
		t.Fatal(err)
	}
}

type staticToken string

func (s staticToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(s)}, nil
}
func (s staticToken) RequireTransportSecurity() bool { return false }

func TestListenRefusals(t *testing.T) {
	sn := simnet.New()
	defer sn.Close()
	m := newMessenger(t, sn, "a")
	t.Run("tcp without token", func(t *testing.T) {
		_, err := api.Listen(m, api.Config{Socket: api.SocketPath(t.TempDir()), TCP: "127.0.0.1:0"})
		if !errors.Is(err, api.ErrTokenRequired) {
			t.Fatalf("err = %v, want ErrTokenRequired", err)
		}
	})
	t.Run("second node on a live socket", func(t *testing.T) {
		srv, _ := serve(t, m, api.Config{})
		_, err := api.Listen(m, api.Config{Socket: srv.Socket()})
		if !errors.Is(err, api.ErrAlreadyRunning) {
			t.Fatalf("err = %v, want ErrAlreadyRunning", err)
		}
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		sock := api.SocketPath(t.TempDir())
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // leaves the file, as a killed node does
		srv, _ := serve(t, m, api.Config{Socket: sock})
		c, err := client.Dial(srv.Socket())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Account.Get(context.Background(), &apiv1.GetAccountRequest{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		sock := api.SocketPath(t.TempDir())
		if err := os.WriteFile(sock, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := api.Listen(m, api.Config{Socket: sock}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDialNoNodeRunning(t *testing.T) {
	dir := t.TempDir()
	_, err := client.Dial(dir)
	if !errors.Is(err, client.ErrNoNode) {
		t.Fatalf("err = %v, want ErrNoNode", err)
	}
	want := "no skein node is running at " + filepath.Join(dir, client.SocketName) + ": start one with `skein run`"
	if err.Error() != want {
		t.Fatalf("message = %q\nwant      %q", err.Error(), want)
	}
	if _, err := client.DialTCP("127.0.0.1:1", "t"); !errors.Is(err, client.ErrNoNode) {
		t.Fatalf("tcp: err = %v, want ErrNoNode", err)
	}
}

func TestSubscribeReplayThenLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	_, dir := serve(t, newMessenger(t, sn, "a"), api.Config{})
	c, err := client.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	first, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "g", Body: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"two", "three"} {
		if _, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "g", Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		req   *apiv1.SubscribeRequest
		want  []string
		extra string
	}{
		{"replay all", &apiv1.SubscribeRequest{Group: "g", Replay: true}, []string{"one", "two", "three"}, "four"},
		{"replay since", &apiv1.SubscribeRequest{Group: "g", Replay: true, Since: first.GetCid()}, []string{"two", "three", "four"}, "five"},
		{"live only", &apiv1.SubscribeRequest{Group: "g"}, nil, "six"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			s, err := c.Messages.Subscribe(sctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if md, err := s.Header(); err != nil || len(md.Get(api.SubscribedHeader)) != 1 {
				t.Fatalf("subscribe header: %v, %v", md, err)
			}
			for _, want := range tc.want {
				m, err := s.Recv()
				if err != nil || string(m.GetBody()) != want {
					t.Fatalf("replayed %v, %v; want %q", m, err, want)
				}
			}
			// The header came after the subscription was registered, so
			// a message sent now arrives once, after the replay.
			if _, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "g", Body: []byte(tc.extra)}); err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv()
			if err != nil || string(m.GetBody()) != tc.extra {
				t.Fatalf("live %v, %v; want %q", m, err, tc.extra)
			}
		})
	}
}

// TestPeersFoundBy: Peers.List says how each peer was found, and a peer
// connected through Peers.Connect is recorded as manual.
func TestPeersFoundBy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	ma := newMessenger(t, sn, "a")
	newMessenger(t, sn, "b")
	newMessenger(t, sn, "c")
	book := peersource.NewBook(0)
	book.Record("b", "mdns")
	_, dir := serve(t, ma, api.Config{PeerSources: book})
	ca, err := client.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	for _, id := range []string{"b", "c"} {
		if _, err := ca.Peers.Connect(ctx, &apiv1.ConnectPeerRequest{Addr: "/p2p/" + id}); err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
	}
	r, err := ca.Peers.List(ctx, &apiv1.ListPeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, p := range r.GetPeers() {
		got[p.GetId()] = p.GetFoundBy()
	}
	want := map[string][]string{"b": {"mdns", peersource.Manual}, "c": {peersource.Manual}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("found by %v, want %v", got, want)
	}
}

// TestMessageSizeLimit: a body of exactly MaxMessageBytes is sent and
// delivered (it fits one log entry with everything sealing adds); one byte
// more is refused by the API, naming the group by its local name.
func TestMessageSizeLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	_, dir := serve(t, newMessenger(t, sn, "a"), api.Config{})
	c, err := client.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "friends"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		size int
		code codes.Code
	}{
		{"at the limit", apiv1.MaxMessageBytes, codes.OK},
		{"one byte over", apiv1.MaxMessageBytes + 1, codes.InvalidArgument},
		{"1 MiB", 1 << 20, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Random bytes: nothing on the way may compress them.
			body := make([]byte, tc.size)
			if _, err := rand.Read(body); err != nil {
				t.Fatal(err)
			}
			_, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "friends", Body: body})
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.code)
			}
			if tc.code == codes.OK {
				return
			}
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, "group friends") || !strings.Contains(msg, fmt.Sprint(apiv1.MaxMessageBytes)) {
				t.Errorf("error %q does not name the group and the limit", msg)
			}
		})
	}
	list, err := c.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "friends"})
	if err != nil || len(list.GetMessages()) != 1 || len(list.GetMessages()[0].GetBody()) != apiv1.MaxMessageBytes {
		t.Fatalf("listed %d messages, %v; want the one at the limit", len(list.GetMessages()), err)
	}
}
