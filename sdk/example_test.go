package sdk_test

import (
	"context"
	"net"

	"github.com/skein-p2p/skein/sdk"
)

// loopback is the smallest plugin: a transport that dials nothing.
type loopback struct{}

func (loopback) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "transport.example", Kinds: []sdk.Kind{sdk.KindTransport}, Version: "0.1.0"}, nil
}
func (loopback) Configure(context.Context, map[string]any) ([]sdk.Diagnostic, error) { return nil, nil }
func (loopback) Start(context.Context) error                                         { return nil }
func (loopback) Stop(context.Context) error                                          { return nil }
func (loopback) Protocol() string                                                    { return "x-example" }
func (loopback) Listen(context.Context, string) (sdk.Listener, error) {
	return nil, net.UnknownNetworkError("x-example")
}
func (loopback) Dial(context.Context, string) (net.Conn, error) {
	return nil, net.UnknownNetworkError("x-example")
}

// A plugin's main is one line. Serve answers the host's handshake on
// stdout, serves every kind the value implements, and exits when the host
// (or its parent) goes away.
func ExampleServe() {
	sdk.Serve(loopback{})
}
