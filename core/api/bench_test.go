package api_test

import (
	"context"
	"testing"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// BenchmarkAccountGet is one unary call over the unix socket.
func BenchmarkAccountGet(b *testing.B) {
	sn := simnet.New()
	defer sn.Close()
	_, dir := serve(b, newMessenger(b, sn, "a"), api.Config{})
	c, err := client.Dial(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Account.Get(ctx, &apiv1.GetAccountRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendOverSocket is Messages.Send through the API on a one-member
// group.
func BenchmarkSendOverSocket(b *testing.B) {
	sn := simnet.New()
	defer sn.Close()
	_, dir := serve(b, newMessenger(b, sn, "a"), api.Config{})
	c, err := client.Dial(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "g"}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 200)
	for b.Loop() {
		if _, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "g", Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}
