package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/skein-p2p/skein/core/log"
)

// Namespace prefixes every Skein metric.
const Namespace = "skein"

// Registry holds every Skein metric and the Go runtime and process
// collectors. It is process-wide: several nodes in one process (tests,
// simulations) add to the same counters.
var Registry = prometheus.NewRegistry()

// The counters the core adds to.
var (
	// MessagesSent counts messages this node's devices sent (acknowledged
	// to the caller).
	MessagesSent = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "messages_sent_total",
		Help: "Messages sent by this node (written to the group's log and acknowledged).",
	})
	// MessagesDelivered counts messages received from other devices,
	// opened and delivered to the node's subscribers.
	MessagesDelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "messages_delivered_total",
		Help: "Messages received from other devices, opened and delivered.",
	})
	// EntriesJoined counts log entries joins added to local replicas.
	EntriesJoined = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "entries_joined_total",
		Help: "Log entries added to local replicas by joins (from peers).",
	})
	// EntriesRejected counts entries a join refused, by reason (see
	// RejectReason).
	EntriesRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "entries_rejected_total",
		Help: "Log entries a join refused, by reason.",
	}, []string{"reason"})
	// BlocksFetched counts blocks joins obtained, by source: inline (in an
	// announcement), bulk (an entries response) or network (the network
	// plugin's block exchange or store).
	BlocksFetched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "blocks_fetched_total",
		Help: "Blocks obtained by joins, by source (inline, bulk, network).",
	}, []string{"source"})
)

// Sources of a fetched block (BlocksFetched's label).
const (
	SourceInline  = "inline"
	SourceBulk    = "bulk"
	SourceNetwork = "network"
)

func init() {
	Registry.MustRegister(
		MessagesSent, MessagesDelivered, EntriesJoined, EntriesRejected, BlocksFetched,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every reason and source shows from the start, at 0.
	for _, r := range rejectReasons {
		EntriesRejected.WithLabelValues(r.label)
	}
	EntriesRejected.WithLabelValues("other")
	for _, s := range []string{SourceInline, SourceBulk, SourceNetwork} {
		BlocksFetched.WithLabelValues(s)
	}
}

var rejectReasons = []struct {
	err   error
	label string
}{
	{log.ErrMalformed, "malformed"},
	{log.ErrHashMismatch, "hash_mismatch"},
	{log.ErrBadSignature, "bad_signature"},
	{log.ErrNotYetAllowed, "not_yet_allowed"},
	{log.ErrNotAllowed, "not_allowed"},
	{log.ErrTooLarge, "too_large"},
	{log.ErrClock, "bad_clock"},
	{log.ErrWrongLog, "wrong_log"},
	{log.ErrCycle, "cycle"},
	{log.ErrBadAncestor, "bad_ancestor"},
	{log.ErrMissingBlock, "missing_block"},
}

// RejectReason is the reason label of a join's rejection error: one of
// malformed, hash_mismatch, bad_signature, not_yet_allowed, not_allowed,
// too_large, bad_clock, wrong_log, cycle, bad_ancestor, missing_block,
// other.
func RejectReason(err error) string {
	for _, r := range rejectReasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// Rejected adds the rejections of one join to EntriesRejected.
func Rejected(rs []log.Rejection) {
	for _, r := range rs {
		EntriesRejected.WithLabelValues(RejectReason(r.Err)).Inc()
	}
}

// Handler serves Registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

// Server is a running metrics endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
	err chan error
}

// Listen listens on addr (host:port; port 0 picks a free one) and serves
// GET /metrics from Registry, and the collectors extra adds (unregistered
// again by Close), until Close. With pprof it also serves Go's profiles
// under /debug/pprof/.
func Listen(addr string, pprof bool, logger *slog.Logger, extra ...prometheus.Collector) (*Server, error) {
	for _, c := range extra {
		if err := Registry.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		for _, c := range extra {
			Registry.Unregister(c)
		}
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler())
	if pprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	}
	s := &Server{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)},
		ln:  ln,
		err: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		for _, c := range extra {
			Registry.Unregister(c)
		}
		s.err <- err
	}()
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the endpoint; scrapes under way end by ctx's deadline.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	return errors.Join(err, <-s.err)
}
