package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// dialGroup serves m, dials it and creates a group named "g".
func dialGroup(tb testing.TB, m *messenger.Messenger, cfg api.Config) (*api.Server, *client.Client) {
	tb.Helper()
	srv, dir := serve(tb, m, cfg)
	c, err := client.Dial(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if _, err := c.Groups.Create(context.Background(), &apiv1.CreateGroupRequest{Name: "g"}); err != nil {
		tb.Fatal(err)
	}
	return srv, c
}

// TestSendStream: messages sent pipelined are acknowledged in order and
// land in the log in the order sent; a message that cannot be sent is
// acknowledged with its code and the stream goes on.
func TestSendStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	_, c := dialGroup(t, newMessenger(t, sn, "a"), api.Config{SendWindow: 16})
	s, err := c.NewSender(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // several windows' worth
	bad := map[int]struct {
		group string
		body  []byte
		code  codes.Code
	}{
		7:   {"nope", []byte("x"), codes.NotFound},
		100: {"g", nil, codes.InvalidArgument},
		200: {"g", make([]byte, apiv1.MaxMessageBytes+1), codes.InvalidArgument},
	}
	var ps []*client.PendingSend
	var want []string
	for i := range n {
		group, body := "g", []byte(fmt.Sprintf("m%03d", i))
		if b, ok := bad[i]; ok {
			group, body = b.group, b.body
		} else {
			want = append(want, string(body))
		}
		p, err := s.Send(ctx, group, body)
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ps = append(ps, p)
	}
	var last uint64
	for i, p := range ps {
		ack, err := p.Wait(ctx)
		if b, ok := bad[i]; ok {
			if status.Code(err) != b.code {
				t.Fatalf("message %d: %v, want code %v", i, err, b.code)
			}
			continue
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if ack.GetSeq() != uint64(i+1) || ack.GetCid() == "" || ack.GetTime() <= last {
			t.Fatalf("message %d: ack %v after time %d", i, ack, last)
		}
		last = ack.GetTime()
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := s.Send(ctx, "g", []byte("late")); err == nil {
		t.Fatal("send after close succeeded")
	}
	list, err := c.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list.GetMessages() {
		got = append(got, string(m.GetBody()))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("log holds %d messages %v...; want %d in send order", len(got), got[:min(5, len(got))], len(want))
	}
}

// TestSendStreamEndsWhenNodeStops: an open send stream ends with
// UNAVAILABLE "the node is stopping" when the node stops, and every
// acknowledged message was written.
func TestSendStreamEndsWhenNodeStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	srv, c := dialGroup(t, newMessenger(t, sn, "a"), api.Config{})
	stream, err := c.Messages.SendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&apiv1.SendRequest{Group: "g", Body: []byte("one"), Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if ack, err := stream.Recv(); err != nil || ack.GetCode() != 0 {
		t.Fatalf("ack %v, %v", ack, err)
	}
	stopped := make(chan struct{})
	go func() { srv.Stop(ctx); close(stopped) }()
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "the node is stopping") {
		t.Fatalf("stream ended with %v, want UNAVAILABLE the node is stopping", err)
	}
	<-stopped
}

// TestSendStreamClientGoesAway: a client that sends and leaves without
// reading its acks does not hold the node: what the node began is written
// (and delivered locally), the group goes on taking messages and the node
// stops promptly.
func TestSendStreamClientGoesAway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	m := newMessenger(t, sn, "a")
	_, c := dialGroup(t, m, api.Config{SendWindow: 8})
	sctx, scancel := context.WithCancel(ctx)
	stream, err := c.Messages.SendStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := stream.Send(&apiv1.SendRequest{Group: "g", Body: []byte(fmt.Sprint("m", i)), Seq: uint64(i + 1)}); err != nil {
			break // the stream's window is full; gone now anyway
		}
	}
	if _, err := stream.Recv(); err != nil { // at least one begun
		t.Fatal(err)
	}
	scancel()
	// The messages listed are the log's own: each was written (List reads
	// what is delivered), in order, and the group takes more.
	if _, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "g", Body: []byte("after")}); err != nil {
		t.Fatalf("send after the client left: %v", err)
	}
	list, err := c.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	after := false
	for _, msg := range list.GetMessages() {
		if string(msg.GetBody()) == "after" {
			after = true
			continue
		}
		got = append(got, string(msg.GetBody()))
	}
	if !after || len(got) == 0 {
		t.Fatalf("listed %d of the stream's messages, and after: %v", len(got), after)
	}
	for i, b := range got {
		if b != fmt.Sprint("m", i) {
			t.Fatalf("message %d is %q: not the stream's order", i, b)
		}
	}
}
