package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// pluginServer serves one Plugin value over the v1 wire: the lifecycle and
// every kind the value implements.
type pluginServer struct {
	impl   Plugin
	hub    *eventHub
	logger *slog.Logger

	transport *transportServer // nil unless impl is a Transport

	mu      sync.Mutex
	started bool
	stopped bool
}

func newPluginServer(impl Plugin, hub *eventHub, logger *slog.Logger) *pluginServer {
	s := &pluginServer{impl: impl, hub: hub, logger: logger}
	if t, ok := impl.(Transport); ok {
		s.transport = newTransportServer(t, logger)
	}
	return s
}

func (s *pluginServer) register(g *grpc.Server) {
	wirev1.RegisterPluginServer(g, &lifecycleServer{s: s})
	if st, ok := s.impl.(Store); ok {
		wirev1.RegisterStoreServer(g, &storeServer{impl: st})
	}
	if s.transport != nil {
		wirev1.RegisterTransportServer(g, s.transport)
	}
	if d, ok := s.impl.(Discovery); ok {
		wirev1.RegisterDiscoveryServer(g, &discoveryServer{impl: d})
	}
	if n, ok := s.impl.(Network); ok {
		wirev1.RegisterNetworkServer(g, newNetworkServer(n))
	}
}

// shutdown stops the plugin if it was started and not stopped, within d.
func (s *pluginServer) shutdown(d time.Duration) {
	s.mu.Lock()
	needStop := s.started && !s.stopped
	s.stopped = true
	s.mu.Unlock()
	if needStop {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		if err := s.impl.Stop(ctx); err != nil {
			s.logger.Warn("stop on shutdown", "error", err)
		}
		cancel()
	}
	if s.transport != nil {
		s.transport.close()
	}
}

// implementedKinds lists the kinds whose wire the value can serve.
func implementedKinds(p Plugin) map[Kind]bool {
	k := map[Kind]bool{}
	if _, ok := p.(Store); ok {
		k[KindStore] = true
	}
	if _, ok := p.(Transport); ok {
		k[KindTransport] = true
	}
	if _, ok := p.(Discovery); ok {
		k[KindDiscovery] = true
	}
	if _, ok := p.(Network); ok {
		k[KindNetwork] = true
	}
	return k
}

// completeDescription checks that every declared kind is implemented and
// adds the capabilities the sdk provides for the kinds served.
func completeDescription(p Plugin, d Description) (Description, error) {
	impl := implementedKinds(p)
	for _, k := range d.Kinds {
		switch k {
		case KindStore, KindTransport, KindDiscovery, KindNetwork:
		default:
			return d, fmt.Errorf("plugin %s declares unknown kind %q", d.ID, k)
		}
		if !impl[k] {
			return d, fmt.Errorf("plugin %s declares kind %q but %T does not implement it", d.ID, k, p)
		}
	}
	caps := slices.Clone(d.Capabilities)
	add := func(c string) {
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	if slices.Contains(d.Kinds, KindTransport) {
		add(CapTransportSocket)
		add(CapTransportStream)
		if _, ok := p.(PacketTransport); ok {
			add(CapTransportPacket)
		}
	}
	if _, ok := p.(StatusReporter); ok {
		add(CapStatus)
	}
	if slices.Contains(d.Kinds, KindNetwork) {
		if _, ok := p.(PeerNotifier); ok {
			add(CapNetworkPeerEvents)
		}
		if _, ok := p.(DirectMessenger); ok {
			add(CapNetworkDirect)
		}
		if _, ok := p.(PeerBlocker); ok {
			add(CapNetworkBlockPeer)
		}
		if _, ok := p.(TransportAttacher); ok {
			add(CapNetworkTransports)
		}
		if _, ok := p.(TopicGate); ok {
			add(CapNetworkTopicGate)
		}
		if _, ok := p.(TopicValidator); ok {
			add(CapNetworkTopicValidator)
		}
		if _, ok := p.(PeerScorer); ok {
			add(CapNetworkPeerScorer)
		}
		if _, ok := p.(TopicPeerNotifier); ok {
			add(CapNetworkTopicPeerEvents)
		}
	}
	d.Capabilities = caps
	return d, nil
}

type lifecycleServer struct {
	wirev1.UnimplementedPluginServer
	s *pluginServer
}

func (l *lifecycleServer) Describe(ctx context.Context, _ *wirev1.Empty) (*wirev1.Description, error) {
	d, err := l.s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(fmt.Errorf("describe: %w", err))
	}
	d, err = completeDescription(l.s.impl, d)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return descriptionToWire(d), nil
}

func (l *lifecycleServer) Configure(ctx context.Context, req *wirev1.ConfigureRequest) (resp *wirev1.ConfigureResponse, err error) {
	cfg := map[string]any{}
	if len(req.GetConfigJson()) > 0 {
		if err := json.Unmarshal(req.GetConfigJson(), &cfg); err != nil {
			return &wirev1.ConfigureResponse{Diagnostics: []*wirev1.Diagnostic{{
				Severity: int32(SeverityError),
				Message:  fmt.Sprintf("config is not a JSON object: %v", err),
			}}}, nil
		}
	}
	// Bad config must never crash a plugin: a panic in Configure becomes a
	// diagnostic.
	defer func() {
		if r := recover(); r != nil {
			l.s.logger.Error("configure panicked", "panic", fmt.Sprint(r))
			resp = &wirev1.ConfigureResponse{Diagnostics: []*wirev1.Diagnostic{{
				Severity: int32(SeverityError),
				Message:  fmt.Sprintf("plugin failed on this config: %v", r),
			}}}
			err = nil
		}
	}()
	diags, err := l.s.impl.Configure(ctx, cfg)
	if err != nil {
		return nil, toStatus(fmt.Errorf("configure: %w", err))
	}
	return &wirev1.ConfigureResponse{Diagnostics: diagnosticsToWire(diags)}, nil
}

func (l *lifecycleServer) Start(ctx context.Context, _ *wirev1.Empty) (*wirev1.Empty, error) {
	if err := l.s.impl.Start(ctx); err != nil {
		return nil, toStatus(fmt.Errorf("start: %w", err))
	}
	l.s.mu.Lock()
	l.s.started = true
	l.s.stopped = false
	l.s.mu.Unlock()
	return &wirev1.Empty{}, nil
}

func (l *lifecycleServer) Stop(ctx context.Context, req *wirev1.StopRequest) (*wirev1.Empty, error) {
	if dl := req.GetDeadlineUnixNano(); dl > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, dl))
		defer cancel()
	}
	err := l.s.impl.Stop(ctx)
	l.s.mu.Lock()
	l.s.stopped = true
	l.s.mu.Unlock()
	if err != nil {
		return nil, toStatus(fmt.Errorf("stop: %w", err))
	}
	return &wirev1.Empty{}, nil
}

func (l *lifecycleServer) Status(ctx context.Context, _ *wirev1.Empty) (*wirev1.StatusReport, error) {
	st, err := pluginStatus(ctx, l.s.impl)
	if err != nil {
		return nil, toStatus(fmt.Errorf("status: %w", err))
	}
	return statusToWire(st), nil
}

// pluginStatus asks a StatusReporter, or reports healthy for a plugin that
// is not one.
func pluginStatus(ctx context.Context, p Plugin) (Status, error) {
	sr, ok := p.(StatusReporter)
	if !ok {
		return Status{Healthy: true, Message: "no status reporter"}, nil
	}
	return sr.Status(ctx)
}

func (l *lifecycleServer) Events(req *wirev1.EventsRequest, stream grpc.ServerStreamingServer[wirev1.Event]) error {
	ctx := stream.Context()
	interval := time.Duration(req.GetStatusIntervalNanos())
	if interval <= 0 {
		interval = 5 * time.Second
	}
	var logs <-chan logEvent
	if req.GetLogs() {
		sub, cancel := l.s.hub.subscribe(slog.Level(req.GetMinLevel()))
		defer cancel()
		logs = sub
	}
	var last *Status
	sendStatus := func() error {
		st, err := pluginStatus(ctx, l.s.impl)
		if err != nil {
			st = Status{Healthy: false, Message: fmt.Sprintf("status: %v", err)}
		}
		if last != nil && statusEqual(*last, st) {
			return nil
		}
		last = &st
		return stream.Send(&wirev1.Event{
			TimeUnixNano: time.Now().UnixNano(),
			Body:         &wirev1.Event_Status{Status: statusToWire(st)},
		})
	}
	if err := sendStatus(); err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := sendStatus(); err != nil {
				return err
			}
		case ev := <-logs:
			if err := stream.Send(&wirev1.Event{
				TimeUnixNano: ev.time.UnixNano(),
				Body: &wirev1.Event_Log{Log: &wirev1.LogRecord{
					Level: int32(ev.level), Message: ev.message, Attrs: ev.attrs,
				}},
			}); err != nil {
				return err
			}
		}
	}
}

func statusEqual(a, b Status) bool {
	return a.Healthy == b.Healthy && a.Message == b.Message && maps.Equal(a.Details, b.Details)
}
