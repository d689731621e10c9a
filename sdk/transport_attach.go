package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// CapNetworkTransports: the network implements TransportAttacher.
const CapNetworkTransports = "network.transports"

// TransportAttacher is an optional Network capability: the network carries
// its connections over transports that transport plugins give, each under
// the multiaddr protocol named by its Protocol(). The network runs its own
// security and multiplexing (Noise and yamux for network.ipfs) over every
// transport connection: a transport only ever carries ciphertext.
//
// Across processes: when the network plugin runs out of process, the
// Transport given to AttachTransport must be an EndpointTransport (a
// transport plugin running out of process too, as the host's proxies
// are). The network plugin process then connects to the transport plugin
// process itself, and the transport's bytes flow between those two
// processes without passing through the host (socket data plane: the
// connection's descriptor is handed to the network process).
type TransportAttacher interface {
	// AttachTransport attaches t under name (the transport plugin's name
	// in the node). Attaching the same name again replaces the transport,
	// as after a restart of its plugin.
	AttachTransport(ctx context.Context, name string, t Transport) error
	// DetachTransport stops using the transport attached under name; a
	// name not attached is a no-op.
	DetachTransport(ctx context.Context, name string) error
}

// TransportAttachChecker is an optional capability of a TransportAttacher:
// configured but not started, it says whether AttachTransport would take a
// transport of the multiaddr protocol (nil) or why not, so that `skein
// config check` refuses what `skein run` would. The node asks a linked-in
// instance of a built-in network it configured itself; nothing crosses the
// wire.
type TransportAttachChecker interface {
	CheckAttach(protocol string) error
}

// TransportEndpoint is where a transport plugin process serves the v1 wire:
// enough for another process to use its transport directly.
type TransportEndpoint struct {
	// Network is "unix" or "tcp" (a loopback address only).
	Network string
	// Address is the socket path or host:port of the plugin's gRPC server.
	Address string
	// Protocol is the transport's multiaddr protocol name.
	Protocol string
	// DataPlane is the data plane to use (socket or stream; auto means
	// socket).
	DataPlane DataPlane
}

// EndpointTransport is a Transport served by a plugin process that another
// process can reach directly (see TransportAttacher).
type EndpointTransport interface {
	Transport
	// TransportEndpoint returns the endpoint of the process serving the
	// transport now.
	TransportEndpoint() (TransportEndpoint, error)
}

// ErrNoTransportEndpoint is returned when a transport must be reached from
// another process but no other process can reach it: a linked-in transport
// given to an out-of-process network. Run the transport plugin out of
// process too, or the network plugin linked in.
var ErrNoTransportEndpoint = errors.New("transport has no endpoint another process can reach")

func (ep TransportEndpoint) validate() error {
	switch ep.Network {
	case "unix":
		if !filepath.IsAbs(ep.Address) {
			return fmt.Errorf("transport endpoint: unix address %q: want an absolute path", ep.Address)
		}
	case "tcp":
		a, err := net.ResolveTCPAddr("tcp", ep.Address)
		if err != nil {
			return fmt.Errorf("transport endpoint: address %q: %w", ep.Address, err)
		}
		if !a.IP.IsLoopback() {
			return fmt.Errorf("transport endpoint: address %q: only loopback addresses are allowed", ep.Address)
		}
	default:
		return fmt.Errorf("transport endpoint: network %q: want unix or tcp", ep.Network)
	}
	if ep.Protocol == "" {
		return errors.New("transport endpoint: empty protocol")
	}
	if ep.DataPlane < DataPlaneAuto || ep.DataPlane > DataPlaneStream {
		return fmt.Errorf("transport endpoint: data plane %d: unknown mode", int(ep.DataPlane))
	}
	return nil
}

// DialTransport connects to the transport plugin process at ep and returns
// its Transport; close ends the connection (and with it every listener
// made through it). It checks that the plugin serves a transport of
// ep.Protocol before returning.
func DialTransport(ctx context.Context, ep TransportEndpoint) (t Transport, close func() error, err error) {
	if err := ep.validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	target := "passthrough:///" + ep.Address
	if ep.Network == "unix" {
		target = "unix://" + ep.Address
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, GRPCDialOptions()...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("dial transport endpoint %s %s: %w", ep.Network, ep.Address, err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	closeFn := func() error {
		var err error
		once.Do(func() {
			cancel()
			err = conn.Close()
		})
		return err
	}
	go func() {
		// The client context ends when the connection is closed, as a
		// plugin client's ends when its process exits.
		for s := conn.GetState(); s != connectivity.Shutdown; s = conn.GetState() {
			if !conn.WaitForStateChange(cctx, s) {
				return
			}
		}
		cancel()
	}()
	c := &grpcClient{ctx: cctx, conn: conn}
	info, err := c.transport().Info(ctx, &wirev1.Empty{})
	if err != nil {
		_ = closeFn()
		return nil, nil, fromStatus("transport endpoint info", err)
	}
	if info.GetProtocol() != ep.Protocol {
		_ = closeFn()
		return nil, nil, fmt.Errorf("transport endpoint %s serves protocol %q, want %q", ep.Address, info.GetProtocol(), ep.Protocol)
	}
	rt := &remoteTransport{c: c, tc: c.transport(), protocol: info.GetProtocol(), plane: wirev1.DataPlane_DATA_PLANE_SOCKET}
	if ep.DataPlane == DataPlaneStream {
		rt.plane = wirev1.DataPlane_DATA_PLANE_STREAM
	}
	if pp := info.GetPacketProfile(); pp != nil {
		return &remotePacketTransport{remoteTransport: rt, profile: packetProfileFromWire(pp)}, closeFn, nil
	}
	return rt, closeFn, nil
}

func endpointToWire(ep TransportEndpoint) *wirev1.TransportEndpoint {
	w := &wirev1.TransportEndpoint{Network: ep.Network, Address: ep.Address, Protocol: ep.Protocol}
	switch ep.DataPlane {
	case DataPlaneStream:
		w.DataPlane = wirev1.DataPlane_DATA_PLANE_STREAM
	default:
		w.DataPlane = wirev1.DataPlane_DATA_PLANE_SOCKET
	}
	return w
}

func endpointFromWire(w *wirev1.TransportEndpoint) TransportEndpoint {
	ep := TransportEndpoint{Network: w.GetNetwork(), Address: w.GetAddress(), Protocol: w.GetProtocol(), DataPlane: DataPlaneSocket}
	switch w.GetDataPlane() {
	case wirev1.DataPlane_DATA_PLANE_STREAM:
		ep.DataPlane = DataPlaneStream
	case wirev1.DataPlane_DATA_PLANE_SOCKET:
	default:
		ep.DataPlane = -1 // refused by validate
	}
	return ep
}

// ---- host side: remoteNetwork ----

var _ TransportAttacher = (*remoteNetwork)(nil)

// AttachTransport implements TransportAttacher for a network in a plugin
// process: t must be an EndpointTransport, whose endpoint the network
// plugin connects to itself.
func (n *remoteNetwork) AttachTransport(ctx context.Context, name string, t Transport) error {
	if !n.caps.transports {
		return fmt.Errorf("attach transport: %w", ErrCapabilityNotServed)
	}
	et, ok := t.(EndpointTransport)
	if !ok {
		return fmt.Errorf("attach transport %s: %w (%T): run the transport plugin out of process too, or the network plugin linked in", name, ErrNoTransportEndpoint, t)
	}
	ep, err := et.TransportEndpoint()
	if err != nil {
		return fmt.Errorf("attach transport %s: %w", name, err)
	}
	_, err = n.c.AttachTransport(ctx, &wirev1.AttachTransportRequest{Name: name, Endpoint: endpointToWire(ep)})
	return capError("attach transport "+name, err)
}

// DetachTransport implements TransportAttacher.
func (n *remoteNetwork) DetachTransport(ctx context.Context, name string) error {
	if !n.caps.transports {
		return fmt.Errorf("detach transport: %w", ErrCapabilityNotServed)
	}
	_, err := n.c.DetachTransport(ctx, &wirev1.DetachTransportRequest{Name: name})
	return capError("detach transport "+name, err)
}

// ---- plugin side: networkServer ----

// attachedEndpoints are the transport endpoint connections the network
// plugin process holds, by attachment name.
type attachedEndpoints struct {
	mu     sync.Mutex
	byName map[string]func() error
}

func (n *networkServer) AttachTransport(ctx context.Context, req *wirev1.AttachTransportRequest) (*wirev1.Empty, error) {
	ta, ok := n.impl.(TransportAttacher)
	if !ok {
		return nil, capUnimplemented("TransportAttacher")
	}
	if req.GetName() == "" || req.GetEndpoint() == nil {
		return nil, toStatus(fmt.Errorf("attach transport: %w: name and endpoint are required", ErrInvalidArgument))
	}
	t, closeFn, err := DialTransport(ctx, endpointFromWire(req.GetEndpoint()))
	if err != nil {
		return nil, toStatus(fmt.Errorf("attach transport %s: %w", req.GetName(), err))
	}
	if err := ta.AttachTransport(ctx, req.GetName(), t); err != nil {
		_ = closeFn()
		return nil, toStatus(err)
	}
	n.attached.mu.Lock()
	prev := n.attached.byName[req.GetName()]
	if n.attached.byName == nil {
		n.attached.byName = map[string]func() error{}
	}
	n.attached.byName[req.GetName()] = closeFn
	n.attached.mu.Unlock()
	if prev != nil {
		_ = prev() // the replaced transport's connection
	}
	return &wirev1.Empty{}, nil
}

func (n *networkServer) DetachTransport(ctx context.Context, req *wirev1.DetachTransportRequest) (*wirev1.Empty, error) {
	ta, ok := n.impl.(TransportAttacher)
	if !ok {
		return nil, capUnimplemented("TransportAttacher")
	}
	if err := ta.DetachTransport(ctx, req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	n.attached.mu.Lock()
	prev := n.attached.byName[req.GetName()]
	delete(n.attached.byName, req.GetName())
	n.attached.mu.Unlock()
	if prev != nil {
		_ = prev()
	}
	return &wirev1.Empty{}, nil
}
