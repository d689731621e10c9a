package api_test

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// TestDevicesService links a second device through the API, lists,
// renames and removes it, and maps bad input to the documented codes.
func TestDevicesService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sn := simnet.New()
	defer sn.Close()
	ma, mb, mc := newMessenger(t, sn, "a"), newMessenger(t, sn, "b"), newMessenger(t, sn, "c")
	sn.ConnectAll()
	_, dirC := serve(t, mc, api.Config{})
	_, dirA := serve(t, ma, api.Config{})
	_, dirB := serve(t, mb, api.Config{})
	ca, err := client.Dial(dirA)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := client.Dial(dirB)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	cc, err := client.Dial(dirC)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	if _, err := ca.Groups.Create(ctx, &apiv1.CreateGroupRequest{Name: "team"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Messages.Send(ctx, &apiv1.SendRequest{Group: "team", Body: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Devices.Rename(ctx, &apiv1.RenameDeviceRequest{Name: "laptop"}); err != nil {
		t.Fatal(err)
	}
	link, err := ca.Devices.Link(ctx, &apiv1.LinkDeviceRequest{TtlSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := cb.Devices.Join(ctx, &apiv1.JoinAccountRequest{Token: link.GetToken(), Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	var last *apiv1.JoinAccountProgress
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	if last.GetStep() != "done" || last.GetMessages() != 1 || last.GetAccount() != ma.Identity().AccountKey().String() {
		t.Fatalf("last progress %v", last)
	}
	msgs, err := cb.Messages.List(ctx, &apiv1.ListMessagesRequest{Group: "team"})
	if err != nil || len(msgs.GetMessages()) != 1 {
		t.Fatalf("the linked device lists %v (%v)", msgs.GetMessages(), err)
	}
	waitUntil(t, "both devices listed with names", func() bool {
		ds, err := ca.Devices.List(ctx, &apiv1.ListDevicesRequest{})
		if err != nil || len(ds.GetDevices()) != 2 {
			return false
		}
		names := map[string]bool{}
		for _, d := range ds.GetDevices() {
			names[d.GetName()] = true
		}
		return names["laptop"] && names["phone"]
	})
	rm, err := ca.Devices.Remove(ctx, &apiv1.RemoveDeviceRequest{Device: "phone"})
	if err != nil || !rm.GetDevice().GetRemoved() || rm.GetGroups() != 2 {
		t.Fatalf("remove: %v, %v", rm, err)
	}

	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"join with garbage", func() error {
			s, err := cb.Devices.Join(ctx, &apiv1.JoinAccountRequest{Token: "skein1-xyz"})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument},
		{"remove unknown", func() error {
			_, err := ca.Devices.Remove(ctx, &apiv1.RemoveDeviceRequest{Device: "nosuch"})
			return err
		}, codes.NotFound},
		{"remove this device", func() error {
			_, err := ca.Devices.Remove(ctx, &apiv1.RemoveDeviceRequest{Device: "laptop"})
			return err
		}, codes.InvalidArgument},
		{"reuse the token", func() error {
			s, err := cc.Devices.Join(ctx, &apiv1.JoinAccountRequest{Token: link.GetToken()})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.FailedPrecondition},
		{"link for too long", func() error {
			_, err := ca.Devices.Link(ctx, &apiv1.LinkDeviceRequest{TtlSeconds: 1 << 30})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// waitUntil polls cond until it holds or waitLimit passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
