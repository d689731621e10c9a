package api

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
)

// devicesServer serves the Devices service (api/v1/devices.proto).
type devicesServer struct {
	apiv1.UnimplementedDevicesServer
	*service
}

// deviceStatus maps the device errors, then the rest as toStatus does.
func deviceStatus(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, group.ErrTokenExpired):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, messenger.ErrDeviceNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, messenger.ErrLinkRefused), errors.Is(err, messenger.ErrNotFresh), errors.Is(err, messenger.ErrNoAccountKey):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return toStatus(err)
}

func (s devicesServer) Link(ctx context.Context, req *apiv1.LinkDeviceRequest) (*apiv1.LinkDeviceResponse, error) {
	tok, exp, err := s.m.LinkDevice(ctx, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, deviceStatus(err)
	}
	return &apiv1.LinkDeviceResponse{Token: tok, ExpiresAt: exp.UnixNano()}, nil
}

func (s devicesServer) Join(req *apiv1.JoinAccountRequest, stream apiv1.Devices_JoinServer) error {
	var sendErr error
	res, err := s.m.JoinAccount(stream.Context(), req.GetToken(), req.GetName(), func(p messenger.LinkProgress) {
		if sendErr != nil || p.Step == "done" {
			return
		}
		sendErr = stream.Send(&apiv1.JoinAccountProgress{Step: p.Step, Group: groupHex(p), GroupName: p.Name,
			Done: uint32(p.Done), Total: uint32(p.Total), Messages: uint32(p.Messages)})
	})
	if err != nil {
		return deviceStatus(err)
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&apiv1.JoinAccountProgress{Step: "done", Done: uint32(len(res.Groups)), Total: uint32(len(res.Groups)),
		Messages: uint32(res.Messages), Account: res.Account.String(), Device: res.Device.String()})
}

func groupHex(p messenger.LinkProgress) string {
	if p.Group.IsZero() {
		return ""
	}
	return p.Group.String()
}

func deviceInfo(d messenger.DeviceInfo) *apiv1.Device {
	out := &apiv1.Device{Device: d.Device.String(), Fingerprint: d.Device.Fingerprint(), Name: d.Name,
		AddedAt: d.Added.UnixNano(), This: d.This, Removed: d.Removed}
	if !d.LastSeen.IsZero() {
		out.LastSeen = d.LastSeen.UnixNano()
	}
	return out
}

func (s devicesServer) List(ctx context.Context, _ *apiv1.ListDevicesRequest) (*apiv1.ListDevicesResponse, error) {
	ds, err := s.m.Devices(ctx)
	if err != nil {
		return nil, deviceStatus(err)
	}
	out := &apiv1.ListDevicesResponse{}
	for _, d := range ds {
		out.Devices = append(out.Devices, deviceInfo(d))
	}
	return out, nil
}

func (s devicesServer) Remove(ctx context.Context, req *apiv1.RemoveDeviceRequest) (*apiv1.RemoveDeviceResponse, error) {
	d, n, err := s.m.RemoveDevice(ctx, req.GetDevice())
	if err != nil {
		return nil, deviceStatus(err)
	}
	return &apiv1.RemoveDeviceResponse{Device: deviceInfo(d), Groups: uint32(n)}, nil
}

func (s devicesServer) Rename(ctx context.Context, req *apiv1.RenameDeviceRequest) (*apiv1.RenameDeviceResponse, error) {
	if err := s.m.RenameDevice(ctx, req.GetDevice(), req.GetName()); err != nil {
		return nil, deviceStatus(err)
	}
	return &apiv1.RenameDeviceResponse{}, nil
}
