package ble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// syncBuffer is a log sink tests read while the plugin writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startSim(t *testing.T, medium string, kv ...any) (*Plugin, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	p := New(WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	plugintest.StartLinked(t, p, simConfig(medium, kv...))
	return p, logs
}

// rawDevice is a device on the medium driven directly, as a misbehaving
// peer would.
func rawDevice(t *testing.T, medium, name string) *simDevice {
	t.Helper()
	p := DefaultSimParams()
	p.Bandwidth, p.Latency, p.MaxLinks = 0, time.Millisecond, 64
	d := newSimDriver(medium, name, p)
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func newMedium() string { return fmt.Sprintf("behaviour-%d", mediumSeq.Add(1)) }

func accept(t *testing.T, l sdk.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept(t.Context())
		if err != nil {
			close(ch)
			return
		}
		t.Cleanup(func() { _ = c.Close() })
		ch <- c
	}()
	return ch
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGarbageCutsLink: a peer that sends a frame that is not one is cut
// off with a log line; the connection reports an error, not a clean EOF.
func TestGarbageCutsLink(t *testing.T) {
	cases := []struct {
		name   string
		packet []byte
	}{
		{"unknown kind", []byte{0x55, 0, 0, 1}},
		{"short", []byte{1}},
		{"out of sequence", appendFrame(nil, frameData, 9, []byte("x"))},
		{"empty data", []byte{frameData, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			medium := newMedium()
			p, logs := startSim(t, medium)
			l, err := p.Listen(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := accept(t, l)
			raw := rawDevice(t, medium, "mallory")
			link, err := raw.Dial(t.Context(), l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer link.Close()
			if err := link.WritePacket(tc.packet, time.Time{}); err != nil {
				t.Fatal(err)
			}
			c := <-got
			if _, err := io.ReadAll(c); err == nil {
				t.Fatal("read ended cleanly after garbage")
			}
			if _, err := link.ReadPacket(); err == nil {
				t.Fatal("link still up after garbage")
			}
			if !strings.Contains(logs.String(), "cutting the link") {
				t.Fatalf("no log line about the cut:\n%s", logs)
			}
		})
	}
}

// TestStalledPeerCutOff: a peer that reads nothing is cut off after the
// stall timeout; the writer gets ErrStalled, not a hang.
func TestStalledPeerCutOff(t *testing.T) {
	medium := newMedium()
	p, logs := startSim(t, medium, "stall_timeout", "1s")
	raw := rawDevice(t, medium, "sloth")
	ll, err := raw.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	c, err := p.Dial(t.Context(), ll.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Write(make([]byte, 1<<20)) // far more than the credits
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("write to a stalled peer: %v, want ErrStalled", err)
	}
	if !strings.Contains(logs.String(), "gave no credit") {
		t.Fatalf("no log line about the stall:\n%s", logs)
	}
	waitFor(t, "the link slot back", func() bool { return p.links == 0 })
}

// TestLinkCap: beyond max_links a dial fails and an inbound link is
// closed.
func TestLinkCap(t *testing.T) {
	medium := newMedium()
	a, _ := startSim(t, medium, "max_links", 1)
	b, logs := startSim(t, medium, "max_links", 1)
	lb, err := b.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	got := accept(t, lb)
	c1, err := a.Dial(t.Context(), lb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	<-got
	if _, err := a.Dial(t.Context(), lb.Addr()); !errors.Is(err, ErrLinkLimit) {
		t.Fatalf("second dial: %v, want ErrLinkLimit", err)
	}
	// A third device dials b, which is full: its link is closed at once.
	raw := rawDevice(t, medium, "third")
	link, err := raw.Dial(t.Context(), lb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = lb.Accept(t.Context()) }()
	if _, err := link.ReadPacket(); err == nil {
		t.Fatal("inbound link beyond the cap stayed up")
	}
	waitFor(t, "the refusal logged", func() bool { return strings.Contains(logs.String(), "at max_links") })
}

// TestDialBackoff: a failed dial makes the next one to the same address
// fail at once until the backoff is over.
func TestDialBackoff(t *testing.T) {
	medium := newMedium()
	a, _ := startSim(t, medium, "dial_backoff", "1h", "dial_backoff_max", "2h")
	b, _ := startSim(t, medium)
	lb, err := b.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	addr := lb.Addr()
	_ = lb.Close()
	if _, err := a.Dial(t.Context(), addr); !errors.Is(err, ErrRefused) {
		t.Fatalf("dial closed channel: %v, want ErrRefused", err)
	}
	if _, err := a.Dial(t.Context(), addr); !errors.Is(err, ErrBackoff) {
		t.Fatalf("dial again: %v, want ErrBackoff", err)
	}
	// Another address of the same device is not held back.
	lb2, err := b.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer lb2.Close()
	go func() { _, _ = lb2.Accept(t.Context()) }()
	c, err := a.Dial(t.Context(), lb2.Addr())
	if err != nil {
		t.Fatalf("dial another channel: %v", err)
	}
	_ = c.Close()
}

// found collects what FindPeers reports for a while.
func found(t *testing.T, d sdk.Discovery, ns string, within time.Duration) []sdk.PeerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	ch, err := d.FindPeers(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	var out []sdk.PeerInfo
	for p := range ch {
		out = append(out, p)
	}
	return out
}

func advertise(t *testing.T, p *Plugin, id string) string {
	t.Helper()
	l, err := p.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if err := p.Advertise(t.Context(), "ns", sdk.PeerInfo{ID: id}); err != nil {
		t.Fatal(err)
	}
	return "/" + Protocol + "/" + l.Addr()
}

// TestTieBreak: of two devices that hear each other only the one with the
// smaller peer id reports the other (so only it dials); the larger
// reports the smaller once tie_break_wait passed with no link from it.
func TestTieBreak(t *testing.T) {
	cases := []struct {
		name      string
		wait      string
		linked    bool // the smaller has a link to the larger
		wantLarge bool // the larger reports the smaller
	}{
		{"larger waits", "1h", false, false},
		{"larger reports after the wait", "0s", false, true},
		{"larger stays quiet while linked", "0s", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			medium := newMedium()
			small, _ := startSim(t, medium, "tie_break_wait", tc.wait)
			large, _ := startSim(t, medium, "tie_break_wait", tc.wait)
			smallAddr := advertise(t, small, "peer-a")
			largeAddr := advertise(t, large, "peer-b")
			if tc.linked {
				_, la, _ := strings.Cut(largeAddr, "/"+Protocol+"/")
				ll := large.listenersSnapshot()[0]
				go func() { c, _ := ll.Accept(t.Context()); t.Cleanup(func() { _ = c.Close() }) }()
				c, err := small.Dial(t.Context(), la)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				waitFor(t, "the link counted", func() bool { return large.linkedTo(small.drv.Device()) })
			}
			got := found(t, small, "ns", 2*time.Second)
			if !hasPeer(got, "peer-b", largeAddr) {
				t.Fatalf("the smaller id did not report the larger: %+v", got)
			}
			got = found(t, large, "ns", 2*time.Second)
			if hasPeer(got, "peer-a", smallAddr) != tc.wantLarge {
				t.Fatalf("the larger id reported %+v; want the smaller reported: %v", got, tc.wantLarge)
			}
		})
	}
}

func (p *Plugin) listenersSnapshot() []*listener {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*listener
	for l := range p.listeners {
		out = append(out, l)
	}
	return out
}

func hasPeer(ps []sdk.PeerInfo, id, addr string) bool {
	for _, p := range ps {
		if p.ID == id && len(p.Addrs) == 1 && p.Addrs[0] == addr {
			return true
		}
	}
	return false
}

// TestFakeAdvertisers: a crowd of devices advertising the Skein service
// (with no identity behind, or a wrong one) costs bounded memory and
// bounded radio time: at most max_devices remembered, at most
// handshakes_per_minute identity reads, refusals counted and logged. A
// real peer among them may wait, as it would on a crowded channel.
func TestFakeAdvertisers(t *testing.T) {
	medium := newMedium()
	p, logs := startSim(t, medium, "max_devices", 32, "handshakes_per_minute", 10)
	const fakes = 1000
	for i := range fakes {
		d := rawDevice(t, medium, "fake-"+strconv.Itoa(i))
		id := []byte{0xff} // not an identity
		if i%2 == 0 {
			id, _ = encodeIdentity("ns", "x@1", "someone-else") // does not match the advertisement
		}
		if err := d.Advertise(t.Context(), encodeAdvertisement("ns", "fake-"+strconv.Itoa(i)), id); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := p.FindPeers(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ch {
			t.Error("a fake advertiser was reported")
		}
	}()
	waitFor(t, "refusals", func() bool {
		st, _ := p.Status(t.Context())
		dropped, _ := strconv.Atoi(st.Details["devices_dropped"])
		fails, _ := strconv.Atoi(st.Details["handshake_failures"])
		return dropped > 0 && fails >= 10
	})
	st, _ := p.Status(t.Context())
	if n, _ := strconv.Atoi(st.Details["devices_heard"]); n > 32 {
		t.Fatalf("remembers %d devices, max_devices 32", n)
	}
	if n, _ := strconv.Atoi(st.Details["handshake_failures"]); n > 10 {
		t.Fatalf("%d identity reads in the first minute, at most 10", n)
	}
	if !strings.Contains(logs.String(), "advertisers beyond the limits ignored") {
		t.Fatalf("no log line about the crowd:\n%s", logs)
	}
}

// TestSimModel: what the simulated radio refuses.
func TestSimModel(t *testing.T) {
	medium := newMedium()
	air := SimAir(medium)
	far := rawDevice(t, medium, "far")
	if err := air.Move("far", 100, 0); err != nil {
		t.Fatal(err)
	}
	p, _ := startSim(t, medium, "sim_range", 10, "sim_mtu", 23)
	near := rawDevice(t, medium, "near")
	lf, err := far.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	ln, err := near.Listen(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := p.Dial(t.Context(), lf.Addr()); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("dial out of range: %v", err)
	}
	c, err := p.Dial(t.Context(), ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := p.PacketProfile().MTU; got != 20 {
		t.Fatalf("packet profile MTU %d, want 23-3", got)
	}
	link, err := ln.Accept(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := link.WritePacket(make([]byte, 24), time.Time{}); err == nil {
		t.Fatal("packet over the MTU sent")
	}
	if err := far.Advertise(t.Context(), make([]byte, 32), nil); !errors.Is(err, ErrAdvertisementSize) {
		t.Fatalf("32-byte advertisement: %v", err)
	}
	// Moving out of range breaks the link.
	if err := air.Move(p.drv.Device(), 50, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("read after moving away: %v, want ErrLinkLost", err)
	}
}

// TestSimLossReproducible: the retransmissions a link's loss causes
// depend only on the seed and the addresses.
func TestSimLossReproducible(t *testing.T) {
	draws := func(seed uint64) []bool {
		medium := newMedium()
		pa := DefaultSimParams()
		pa.Loss = 0.3
		a := newSimDriver(medium, "a", pa)
		b := newSimDriver(medium, "b", pa)
		_ = a.Start(t.Context())
		_ = b.Start(t.Context())
		defer a.Close()
		defer b.Close()
		l := newSimLink(seed, a, b, "a@128", "b@128")
		defer l.breakWith(io.EOF)
		var out []bool
		for range 64 {
			out = append(out, l.a.out.rng.Float64() < pa.Loss)
		}
		return out
	}
	x, y, z := draws(7), draws(7), draws(8)
	if fmt.Sprint(x) != fmt.Sprint(y) {
		t.Fatal("same seed, different losses")
	}
	if fmt.Sprint(x) == fmt.Sprint(z) {
		t.Fatal("different seeds, same losses")
	}
}

// TestGATTFallback: a device that refuses L2CAP channels is reached over
// the GATT byte stream (gattstream.go), whose values come out of order
// and are put back in sequence; with the fallback off the dial is refused.
func TestGATTFallback(t *testing.T) {
	cases := []struct {
		name     string
		fallback bool
	}{
		{"fallback", true},
		{"no fallback", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			medium := newMedium()
			a, _ := startSim(t, medium, "gatt_fallback", tc.fallback)
			b, _ := startSim(t, medium, "sim_channels", false)
			lb, err := b.Listen(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			defer lb.Close()
			got := accept(t, lb)
			c, err := a.Dial(t.Context(), lb.Addr())
			if !tc.fallback {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("dial without fallback: %v, want ErrRefused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := <-got
			msg := bytes.Repeat([]byte("out of order, in order "), 20000)
			go func() { _, _ = c.Write(msg); _ = c.Close() }()
			all, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(all, msg) {
				t.Fatalf("read %d bytes (%v), want the %d sent in order", len(all), err, len(msg))
			}
			link := c.(*conn).link.(*gattStream).pipe.(*simEnd)
			if link.Ordered() || link.out.swapped.Load() == 0 {
				t.Fatalf("link ordered %v, %d packets swapped: the fallback did not reorder", link.Ordered(), link.out.swapped.Load())
			}
		})
	}
}
