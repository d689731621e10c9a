package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Names of the limits every figure is compared to.
const (
	LimitSign        = "Ed25519 sign"
	LimitVerify      = "Ed25519 verify"
	LimitPebbleSync  = "pebble synced put"
	LimitPebbleBatch = "pebble synced batch put"
	LimitStreamRTT   = "libp2p new stream round trip"
)

// measureLimits measures, in this process, what bounds the node's work:
// Ed25519 per core, pebble in dir (one fsync per put, and synced batches
// of 1,000 values of 200 B), and a libp2p new-stream round trip over
// loopback TCP.
func measureLimits(ctx context.Context, dir string, quick bool) ([]Limit, error) {
	span := time.Second
	if quick {
		span = 100 * time.Millisecond
	}
	var out []Limit
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 300)
	sig := ed25519.Sign(priv, msg)
	pub := priv.Public().(ed25519.PublicKey)
	out = append(out,
		Limit{Name: LimitSign, Value: rate(span, func() { ed25519.Sign(priv, msg) }), Unit: "/s per core"},
		Limit{Name: LimitVerify, Value: rate(span, func() { ed25519.Verify(pub, msg, sig) }), Unit: "/s per core"},
	)

	pdir, err := os.MkdirTemp(dir, "pebble-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(pdir)
	db, err := pebble.Open(pdir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		return nil, fmt.Errorf("limits: pebble: %w", err)
	}
	val := make([]byte, 200)
	i := 0
	key := func() []byte { i++; return fmt.Appendf(nil, "k%012d", i) }
	single := rate(span, func() { _ = db.Set(key(), val, pebble.Sync) })
	const batchSize = 1000
	batches := rate(span, func() {
		b := db.NewBatch()
		for range batchSize {
			_ = b.Set(key(), val, nil)
		}
		_ = b.Commit(pebble.Sync)
	})
	if err := db.Close(); err != nil {
		return nil, err
	}
	out = append(out,
		Limit{Name: LimitPebbleSync, Value: single, Unit: "puts/s", Note: "one fsync per 200-B value"},
		Limit{Name: LimitPebbleBatch, Value: batches * batchSize, Unit: "values/s", Note: "batches of 1,000 values of 200 B, one fsync each"},
	)

	rtt, err := streamRTT(ctx, span)
	if err != nil {
		return nil, fmt.Errorf("limits: libp2p: %w", err)
	}
	out = append(out, Limit{Name: LimitStreamRTT, Value: float64(rtt.Microseconds()), Unit: "µs", Note: "median: open a stream, 1 byte there and back, loopback TCP, Noise, yamux"})
	return out, nil
}

// rate runs f for about span and returns its calls per second.
func rate(span time.Duration, f func()) float64 {
	n := 0
	t0 := time.Now()
	for time.Since(t0) < span {
		for range 10 {
			f()
		}
		n += 10
	}
	return float64(n) / time.Since(t0).Seconds()
}

// streamRTT is the median time to open a stream to a connected host over
// loopback TCP and get one byte echoed back.
func streamRTT(ctx context.Context, span time.Duration) (time.Duration, error) {
	opts := []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay()}
	h1, err := libp2p.New(opts...)
	if err != nil {
		return 0, err
	}
	defer h1.Close()
	h2, err := libp2p.New(opts...)
	if err != nil {
		return 0, err
	}
	defer h2.Close()
	const proto = "/skein-bench/echo/1"
	h2.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s)
	})
	if err := h1.Connect(ctx, peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}); err != nil {
		return 0, err
	}
	var took []float64
	buf := make([]byte, 1)
	t0 := time.Now()
	for len(took) < 20 || time.Since(t0) < span {
		t := time.Now()
		s, err := h1.NewStream(ctx, h2.ID(), proto)
		if err != nil {
			return 0, err
		}
		if _, err := s.Write(buf); err != nil {
			s.Reset()
			return 0, err
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			s.Reset()
			return 0, err
		}
		took = append(took, float64(time.Since(t)))
		_ = s.Close()
	}
	return time.Duration(median(took)), nil
}

// quietPebble drops pebble's info logs.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
