package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// grpcPlugin is the single go-plugin GRPCPlugin of protocol version 1. On the
// plugin side impl is set and GRPCServer registers a service per kind impl
// implements; on the host side impl is nil and GRPCClient returns a
// *grpcClient for Remote.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *pluginServer
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

// GRPCServer registers the lifecycle service and one service per kind.
func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.srv == nil {
		return errors.New("skein plugin: no implementation to serve")
	}
	p.srv.register(s)
	return nil
}

// GRPCClient returns the raw client that Remote converts.
func (p *grpcPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &grpcClient{ctx: ctx, conn: conn}, nil
}

// grpcClient is what Dispense returns on the host side.
type grpcClient struct {
	// ctx ends when the plugin process exits.
	ctx  context.Context
	conn *grpc.ClientConn
}

func (c *grpcClient) lifecycle() wirev1.PluginClient    { return wirev1.NewPluginClient(c.conn) }
func (c *grpcClient) store() wirev1.StoreClient         { return wirev1.NewStoreClient(c.conn) }
func (c *grpcClient) transport() wirev1.TransportClient { return wirev1.NewTransportClient(c.conn) }
func (c *grpcClient) network() wirev1.NetworkClient     { return wirev1.NewNetworkClient(c.conn) }
func (c *grpcClient) discovery() wirev1.DiscoveryClient { return wirev1.NewDiscoveryClient(c.conn) }
func (c *grpcClient) String() string                    { return fmt.Sprintf("skein plugin client (%s)", c.conn.Target()) }
func (c *grpcClient) closed() <-chan struct{}           { return c.ctx.Done() }
