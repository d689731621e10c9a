package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// RemotePlugin is a plugin in another process, seen through the v1 wire.
// It implements Plugin and StatusReporter; its kinds are reached through
// Store, Transport, Discovery and Network once Describe has declared them.
//
// Every method is safe for concurrent use. Calls fail with an error
// wrapping ErrPluginUnavailable once the plugin process is gone.
type RemotePlugin struct {
	c   *grpcClient
	cfg remoteConfig

	mu    sync.Mutex
	desc  *Description
	tinfo *wirev1.TransportInfo

	direct     *directRegistry    // handler streams of the network's DirectMessenger
	validators *validatorRegistry // validator streams of its TopicValidator
}

var (
	_ Plugin         = (*RemotePlugin)(nil)
	_ StatusReporter = (*RemotePlugin)(nil)
)

func newRemotePlugin(c *grpcClient, cfg remoteConfig) *RemotePlugin {
	return &RemotePlugin{c: c, cfg: cfg, direct: newDirectRegistry(c.ctx), validators: newValidatorRegistry(c.ctx)}
}

// Done is closed when the plugin process has exited.
func (r *RemotePlugin) Done() <-chan struct{} { return r.c.closed() }

// Describe asks the plugin what it is and remembers the answer, which
// Store, Transport and Discovery consult.
func (r *RemotePlugin) Describe(ctx context.Context) (Description, error) {
	w, err := r.c.lifecycle().Describe(ctx, &wirev1.Empty{})
	if err != nil {
		return Description{}, fromStatus("describe", err)
	}
	d := descriptionFromWire(w)
	var tinfo *wirev1.TransportInfo
	if slices.Contains(d.Kinds, KindTransport) {
		tinfo, err = r.c.transport().Info(ctx, &wirev1.Empty{})
		if err != nil {
			return Description{}, fromStatus("transport info", err)
		}
	}
	r.mu.Lock()
	r.desc = &d
	r.tinfo = tinfo
	r.mu.Unlock()
	return d, nil
}

// Description returns what the last successful Describe said.
func (r *RemotePlugin) Description() (Description, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desc == nil {
		return Description{}, false
	}
	return *r.desc, true
}

func (r *RemotePlugin) declares(k Kind) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.desc != nil && slices.Contains(r.desc.Kinds, k)
}

// Configure sends the plugin its config subtree (JSON-encoded on the wire)
// and returns its diagnostics. A config value that is not JSON-encodable
// is an error here, before anything crosses the wire.
func (r *RemotePlugin) Configure(ctx context.Context, config map[string]any) ([]Diagnostic, error) {
	if config == nil {
		config = map[string]any{}
	}
	b, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("configure: encode config: %w", err)
	}
	resp, err := r.c.lifecycle().Configure(ctx, &wirev1.ConfigureRequest{ConfigJson: b})
	if err != nil {
		return nil, fromStatus("configure", err)
	}
	return diagnosticsFromWire(resp.GetDiagnostics()), nil
}

// Start starts the plugin.
func (r *RemotePlugin) Start(ctx context.Context) error {
	_, err := r.c.lifecycle().Start(ctx, &wirev1.Empty{})
	return fromStatus("start", err)
}

// Stop asks the plugin to stop by ctx's deadline (sent explicitly too).
func (r *RemotePlugin) Stop(ctx context.Context) error {
	req := &wirev1.StopRequest{}
	if dl, ok := ctx.Deadline(); ok {
		req.DeadlineUnixNano = dl.UnixNano()
	}
	_, err := r.c.lifecycle().Stop(ctx, req)
	return fromStatus("stop", err)
}

// Status asks the plugin for its health.
func (r *RemotePlugin) Status(ctx context.Context) (Status, error) {
	w, err := r.c.lifecycle().Status(ctx, &wirev1.Empty{})
	if err != nil {
		return Status{}, fromStatus("status", err)
	}
	return statusFromWire(w), nil
}

// Events streams the plugin's status (at once, then on change) and, if
// asked, its log records. The channel is closed when ctx ends or the
// plugin goes away.
func (r *RemotePlugin) Events(ctx context.Context, opts EventOptions) (<-chan Event, error) {
	stream, err := r.c.lifecycle().Events(ctx, &wirev1.EventsRequest{
		Logs:                opts.Logs,
		MinLevel:            int32(opts.MinLevel),
		StatusIntervalNanos: int64(opts.StatusInterval),
	})
	if err != nil {
		return nil, fromStatus("events", err)
	}
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		for {
			w, err := stream.Recv()
			if err != nil {
				return
			}
			ev := Event{Time: time.Unix(0, w.GetTimeUnixNano())}
			switch b := w.GetBody().(type) {
			case *wirev1.Event_Log:
				ev.Kind = EventLog
				ev.Log = LogRecord{Level: slog.Level(b.Log.GetLevel()), Message: b.Log.GetMessage(), Attrs: b.Log.GetAttrs()}
			case *wirev1.Event_Status:
				ev.Kind = EventStatus
				ev.Status = statusFromWire(b.Status)
			default:
				continue // a newer plugin's event kind: skip it
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Store returns the plugin's store if Describe declared the store kind.
func (r *RemotePlugin) Store() (Store, bool) {
	if !r.declares(KindStore) {
		return nil, false
	}
	return &remoteStore{c: r.c.store()}, true
}

// Discovery returns the plugin's discovery if Describe declared it.
func (r *RemotePlugin) Discovery() (Discovery, bool) {
	if !r.declares(KindDiscovery) {
		return nil, false
	}
	return &remoteDiscovery{c: r.c.discovery()}, true
}

// Network returns the plugin's network if Describe declared it. The value
// always has the methods of the optional capabilities PeerNotifier,
// DirectMessenger, PeerBlocker, TopicGate, TopicValidator, PeerScorer and
// TopicPeerNotifier; each fails with ErrCapabilityNotServed unless the
// plugin announced it (CapNetworkPeerEvents, CapNetworkDirect,
// CapNetworkBlockPeer, CapNetworkTopicGate, CapNetworkTopicValidator,
// CapNetworkPeerScorer, CapNetworkTopicPeerEvents).
// Handlers registered with HandleRequests and validators registered with
// ValidateTopic belong to the plugin, whichever Network value registered
// them.
func (r *RemotePlugin) Network() (Network, bool) {
	r.mu.Lock()
	desc := r.desc
	r.mu.Unlock()
	if desc == nil || !slices.Contains(desc.Kinds, KindNetwork) {
		return nil, false
	}
	return &remoteNetwork{
		c:          r.c.network(),
		direct:     r.direct,
		validators: r.validators,
		caps: networkCaps{
			peerEvents:     slices.Contains(desc.Capabilities, CapNetworkPeerEvents),
			direct:         slices.Contains(desc.Capabilities, CapNetworkDirect),
			blockPeer:      slices.Contains(desc.Capabilities, CapNetworkBlockPeer),
			transports:     slices.Contains(desc.Capabilities, CapNetworkTransports),
			topicGate:      slices.Contains(desc.Capabilities, CapNetworkTopicGate),
			topicValidator: slices.Contains(desc.Capabilities, CapNetworkTopicValidator),
			peerScorer:     slices.Contains(desc.Capabilities, CapNetworkPeerScorer),
			topicPeers:     slices.Contains(desc.Capabilities, CapNetworkTopicPeerEvents),
		},
	}, true
}

// Transport returns the plugin's transport if Describe declared it. The
// result implements PacketTransport when the plugin reports a packet
// profile. Its data plane is chosen from the plugin's capabilities and
// WithDataPlane.
func (r *RemotePlugin) Transport() (Transport, bool) {
	r.mu.Lock()
	desc, tinfo := r.desc, r.tinfo
	r.mu.Unlock()
	if desc == nil || tinfo == nil || !slices.Contains(desc.Kinds, KindTransport) {
		return nil, false
	}
	rt := &remoteTransport{
		c:        r.c,
		tc:       r.c.transport(),
		protocol: tinfo.GetProtocol(),
	}
	socket := slices.Contains(desc.Capabilities, CapTransportSocket)
	stream := slices.Contains(desc.Capabilities, CapTransportStream)
	switch r.cfg.dataPlane {
	case DataPlaneAuto:
		if socket {
			rt.plane = wirev1.DataPlane_DATA_PLANE_SOCKET
		} else if stream {
			rt.plane = wirev1.DataPlane_DATA_PLANE_STREAM
		}
	case DataPlaneSocket:
		if socket {
			rt.plane = wirev1.DataPlane_DATA_PLANE_SOCKET
		}
	case DataPlaneStream:
		if stream {
			rt.plane = wirev1.DataPlane_DATA_PLANE_STREAM
		}
	}
	if tinfo.GetPacketProfile() != nil {
		return &remotePacketTransport{remoteTransport: rt, profile: packetProfileFromWire(tinfo.GetPacketProfile())}, true
	}
	return rt, true
}
