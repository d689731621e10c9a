package sdk

// This file is the host-facing contract: what core/pluginhost (or any other
// Go host) needs to launch a plugin binary through go-plugin and turn what it
// dispenses into the kind interfaces of this package.
//
// A host does, in short:
//
//	client := plugin.NewClient(&plugin.ClientConfig{
//		HandshakeConfig:  sdk.Handshake,
//		VersionedPlugins: sdk.HostPluginSets(),
//		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
//		GRPCDialOptions:  sdk.GRPCDialOptions(),
//		Cmd:              cmd, // with SysProcAttr.Pdeathsig set
//		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
//	})
//	rpc, err := client.Client()
//	raw, err := rpc.Dispense(sdk.PluginName)
//	remote, err := sdk.Remote(raw)
//	desc, err := remote.Describe(ctx)
//	diags, err := remote.Configure(ctx, subtree)
//	err = remote.Start(ctx)
//	if st, ok := remote.Store(); ok { ... }

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the version of the wire protocol this package speaks.
// It is the key of HostPluginSets and Handshake.ProtocolVersion.
const ProtocolVersion = 1

// PluginName is the name under which every Skein plugin is dispensed:
// rpcClient.Dispense(sdk.PluginName). One go-plugin "plugin" carries every
// kind the binary serves.
const PluginName = "skein"

// MagicCookieKey and MagicCookieValue make a plugin binary refuse to run
// when started by anything but a Skein host (go-plugin's basic guard; it is
// not a security measure).
const (
	MagicCookieKey   = "SKEIN_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "f3b1c1b6-skein-plugin-v1-5d0e3a8c9b7f"
)

// Handshake is the go-plugin handshake shared by host and plugin. Use it as
// plugin.ClientConfig.HandshakeConfig. Its ProtocolVersion is only the
// fallback for a host that does not set VersionedPlugins; set
// VersionedPlugins to HostPluginSets().
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// Capabilities a plugin may declare in Description.Capabilities. The sdk
// adds the transport data-plane capabilities itself for a Go plugin.
const (
	// CapTransportSocket: the plugin hands over transport connections as
	// unix-socket connections (one per transport connection) in a private
	// 0700 directory. The fast data plane.
	CapTransportSocket = "transport.socket"
	// CapTransportStream: the plugin carries transport bytes over a gRPC
	// bidirectional stream of chunks. The portable data plane.
	CapTransportStream = "transport.stream"
	// CapTransportPacket: the transport reports a PacketProfile.
	CapTransportPacket = "transport.packet"
	// CapStatus: the plugin implements StatusReporter.
	CapStatus = "status"
	// CapNetworkPeerEvents: the network implements PeerNotifier.
	CapNetworkPeerEvents = "network.peer-events"
	// CapNetworkDirect: the network implements DirectMessenger.
	CapNetworkDirect = "network.direct"
	// CapNetworkBlockPeer: the network implements PeerBlocker.
	CapNetworkBlockPeer = "network.block-peer"
	// CapNetworkTopicGate: the network implements TopicGate.
	CapNetworkTopicGate = "network.topic-gate"
	// CapNetworkTopicValidator: the network implements TopicValidator.
	CapNetworkTopicValidator = "network.topic-validator"
	// CapNetworkPeerScorer: the network implements PeerScorer.
	CapNetworkPeerScorer = "network.peer-scorer"
	// CapNetworkTopicPeerEvents: the network implements TopicPeerNotifier.
	CapNetworkTopicPeerEvents = "network.topic-peer-events"
)

// Errors a host sees at the boundary.
var (
	// ErrNotPlugin is returned by Remote when the value dispensed is not a
	// Skein plugin client (a wrong plugin name or a foreign plugin set).
	ErrNotPlugin = errors.New("dispensed value is not a skein plugin client")
	// ErrKindNotServed is returned when a host calls a kind the plugin did
	// not declare in Describe.
	ErrKindNotServed = errors.New("plugin does not serve this kind")
	// ErrCapabilityNotServed is returned by an optional capability method
	// (PeerEvents, HandleRequests, Request, BlockPeer, CloseTopic,
	// AdmitPeer, ValidateTopic, ScorePeer, TopicPeerEvents) of a remote or
	// host-proxied network whose plugin does not announce the capability.
	// A caller falls back as it would when a type assertion fails.
	ErrCapabilityNotServed = errors.New("capability not served by the plugin")
	// ErrNoDataPlane is returned when host and plugin share no transport
	// data-plane mode.
	ErrNoDataPlane = errors.New("no common transport data plane (transport.socket or transport.stream)")
)

// HostPluginSets returns the plugin sets for plugin.ClientConfig.VersionedPlugins:
// protocol version 1 -> {PluginName: the gRPC client side}. Only gRPC is
// supported (set AllowedProtocols to plugin.ProtocolGRPC).
func HostPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &grpcPlugin{}},
	}
}

// GRPCDialOptions returns the gRPC dial options a host should put in
// plugin.ClientConfig.GRPCDialOptions: larger flow-control windows, so
// that stream-mode transports and large store values move at speed.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(streamWindowBytes),
		grpc.WithInitialConnWindowSize(streamWindowBytes),
	}
}

// DataPlane selects how a remote transport moves bytes.
type DataPlane int

// Data-plane modes. DataPlaneAuto picks socket mode when the plugin offers
// it, else stream mode.
const (
	DataPlaneAuto DataPlane = iota
	DataPlaneSocket
	DataPlaneStream
)

// String names the mode as in config ("auto", "socket", "stream").
func (d DataPlane) String() string {
	switch d {
	case DataPlaneAuto:
		return "auto"
	case DataPlaneSocket:
		return "socket"
	case DataPlaneStream:
		return "stream"
	}
	return fmt.Sprintf("DataPlane(%d)", int(d))
}

// RemoteOption configures Remote.
type RemoteOption func(*remoteConfig) error

type remoteConfig struct {
	dataPlane DataPlane
}

// WithDataPlane forces the transport data plane (default DataPlaneAuto).
// Forcing a mode the plugin does not offer makes Transport calls fail with
// ErrNoDataPlane.
func WithDataPlane(d DataPlane) RemoteOption {
	return func(c *remoteConfig) error {
		if d < DataPlaneAuto || d > DataPlaneStream {
			return fmt.Errorf("data plane %d: unknown mode", int(d))
		}
		c.dataPlane = d
		return nil
	}
}

// Remote turns what rpcClient.Dispense(PluginName) returned into a
// RemotePlugin. It makes no call to the plugin; call Describe next.
func Remote(raw any, opts ...RemoteOption) (*RemotePlugin, error) {
	c, ok := raw.(*grpcClient)
	if !ok {
		return nil, fmt.Errorf("%w (got %T)", ErrNotPlugin, raw)
	}
	cfg := remoteConfig{}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("remote plugin: %w", err)
		}
	}
	return newRemotePlugin(c, cfg), nil
}

// EventKind tells what an Event carries.
type EventKind int

// Event kinds.
const (
	EventLog EventKind = iota + 1
	EventStatus
)

// Event is one item of a plugin's event stream: a log record or a status.
type Event struct {
	Kind EventKind
	Time time.Time
	// Log is set for EventLog.
	Log LogRecord
	// Status is set for EventStatus.
	Status Status
}

// LogRecord is one log line a plugin emitted through slog.
type LogRecord struct {
	Level   slog.Level
	Message string
	// Attrs are the record's attributes flattened to strings ("group.key").
	Attrs map[string]string
}

// EventOptions selects what Events streams.
type EventOptions struct {
	// Logs asks for log records (level >= MinLevel).
	Logs bool
	// MinLevel is the lowest slog level sent (default slog.LevelInfo = 0).
	MinLevel slog.Level
	// StatusInterval is how often the plugin polls its StatusReporter;
	// a status is sent at once and then whenever it changes. 0 means 5s.
	StatusInterval time.Duration
}

// ReattachInfo is what a plugin started by hand in debug mode prints to
// stderr (as one JSON line prefixed by ReattachEnv+"=") so that a host can
// attach to it instead of launching a binary: see ParseReattach.
type ReattachInfo struct {
	Protocol        string `json:"protocol"`
	ProtocolVersion int    `json:"protocol_version"`
	Pid             int    `json:"pid"`
	Network         string `json:"network"`
	Address         string `json:"address"`
}

// DebugEnv, when set to "1" in a plugin's environment, makes Serve run in
// debug (reattach) mode: no handshake with a parent, no parent watch, and
// the ReattachInfo printed to stderr.
const DebugEnv = "SKEIN_PLUGIN_DEBUG"

// ReattachEnv is the prefix of the line a debug-mode plugin prints, and the
// environment variable a host may read it from.
const ReattachEnv = "SKEIN_PLUGIN_REATTACH"

// ParseReattach decodes a ReattachInfo JSON document into a go-plugin
// ReattachConfig for plugin.ClientConfig.Reattach. When reattaching,
// go-plugin ignores VersionedPlugins: set ClientConfig.Plugins to
// HostPluginSets()[ProtocolVersion] as well. The config is marked Test, so
// that the host's Kill leaves the hand-started process running.
func ParseReattach(s string) (*plugin.ReattachConfig, error) {
	var ri ReattachInfo
	if err := json.Unmarshal([]byte(s), &ri); err != nil {
		return nil, fmt.Errorf("parse reattach info: %w", err)
	}
	return ri.Config()
}

// Config converts the info into a go-plugin ReattachConfig.
func (ri ReattachInfo) Config() (*plugin.ReattachConfig, error) {
	if ri.Protocol != string(plugin.ProtocolGRPC) {
		return nil, fmt.Errorf("reattach info: protocol %q: only %q is supported", ri.Protocol, plugin.ProtocolGRPC)
	}
	if ri.ProtocolVersion != ProtocolVersion {
		return nil, fmt.Errorf("reattach info: protocol version %d: this host speaks %d", ri.ProtocolVersion, ProtocolVersion)
	}
	if ri.Pid <= 0 {
		return nil, fmt.Errorf("reattach info: pid %d: must be positive", ri.Pid)
	}
	var addr net.Addr
	switch ri.Network {
	case "unix":
		a, err := net.ResolveUnixAddr("unix", ri.Address)
		if err != nil {
			return nil, fmt.Errorf("reattach info: address %q: %w", ri.Address, err)
		}
		addr = a
	case "tcp":
		a, err := net.ResolveTCPAddr("tcp", ri.Address)
		if err != nil {
			return nil, fmt.Errorf("reattach info: address %q: %w", ri.Address, err)
		}
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("reattach info: address %q: only loopback addresses are allowed", ri.Address)
		}
		addr = a
	default:
		return nil, fmt.Errorf("reattach info: network %q: want unix or tcp", ri.Network)
	}
	return &plugin.ReattachConfig{
		Protocol:        plugin.ProtocolGRPC,
		ProtocolVersion: ri.ProtocolVersion,
		Addr:            addr,
		Pid:             ri.Pid,
		// The plugin was started by hand: the host must not kill it.
		Test: true,
	}, nil
}
