package ble

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/skein-p2p/skein/sdk"
)

// A simulated medium shared by processes (config key sim_hub).
//
// A medium (an Air) lives in one process. Plugins in other processes
// reach it through a hub: a unix socket served by the first plugin that
// names it (ServeSimHub), which holds the Air; every other plugin's
// driver is a proxy (hubDevice) whose device lives on the hub's Air. The
// radio model (timing, loss generators seeded from the medium's seed and
// the two addresses, range, link limits) runs in the hub process only, so
// it is the same as in one process; what is added is the socket's own
// delay, and the hub reads a link's packets ahead of a reader in another
// process (up to the stream window, 256 KiB), which weakens the credit
// back-pressure the simulated link models.
//
// Wire: one yamux session per proxied device over the socket; one stream
// per operation. A stream starts with a request and a response (hubMsg,
// JSON); a link's stream then carries packets. Every message is a 4-byte
// big-endian length, a kind byte and the payload.

const (
	hubKindJSON = 0
	hubKindData = 1
	hubKindErr  = 2
	hubMaxMsg   = 1 << 20
)

// hubMsg is a request (Op set) or a response.
type hubMsg struct {
	Op     string     `json:"op,omitempty"`
	Medium string     `json:"medium,omitempty"`
	Name   string     `json:"name,omitempty"`
	Seed   uint64     `json:"seed,omitempty"`
	Params *SimParams `json:"params,omitempty"`
	Adv    []byte     `json:"adv,omitempty"`
	ID     []byte     `json:"id,omitempty"`
	Device string     `json:"device,omitempty"`
	Addr   string     `json:"addr,omitempty"`

	// link
	Local     string `json:"local,omitempty"`
	Remote    string `json:"remote,omitempty"`
	RemoteDev string `json:"remote_dev,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	Ordered   bool   `json:"ordered,omitempty"`

	Err  string `json:"err,omitempty"`
	Code string `json:"code,omitempty"`
}

var hubErrCodes = []struct {
	code string
	err  error
}{
	{"refused", ErrRefused}, {"range", ErrOutOfRange}, {"limit", ErrLinkLimit},
	{"address", ErrBadAddress}, {"closed", ErrClosed}, {"advsize", ErrAdvertisementSize},
	{"eof", io.EOF}, {"lifecycle", sdk.ErrLifecycle},
	{"canceled", context.Canceled}, {"deadline", context.DeadlineExceeded},
}

func hubErrMsg(err error) hubMsg {
	m := hubMsg{Err: err.Error()}
	for _, c := range hubErrCodes {
		if errors.Is(err, c.err) {
			m.Code = c.code
			break
		}
	}
	return m
}

// hubErr turns a response's error back into one errors.Is knows.
func hubErr(m hubMsg) error {
	if m.Err == "" {
		return nil
	}
	for _, c := range hubErrCodes {
		if c.code == m.Code {
			if c.err == io.EOF {
				return io.EOF
			}
			return fmt.Errorf("%w (sim hub: %s)", c.err, m.Err)
		}
	}
	return fmt.Errorf("sim hub: %s", m.Err)
}

func hubWrite(w io.Writer, kind byte, p []byte) error {
	b := make([]byte, 5+len(p))
	binary.BigEndian.PutUint32(b, uint32(len(p)+1))
	b[4] = kind
	copy(b[5:], p)
	_, err := w.Write(b)
	return err
}

func hubWriteJSON(w io.Writer, m hubMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return hubWrite(w, hubKindJSON, b)
}

func hubRead(r io.Reader) (byte, []byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n < 1 || n > hubMaxMsg {
		return 0, nil, fmt.Errorf("sim hub: message of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, fmt.Errorf("sim hub: %w", io.ErrUnexpectedEOF)
	}
	return b[0], b[1:], nil
}

func hubReadJSON(r io.Reader) (hubMsg, error) {
	var m hubMsg
	k, b, err := hubRead(r)
	if err != nil {
		return m, err
	}
	if k != hubKindJSON {
		return m, fmt.Errorf("sim hub: message of kind %d, want a request or response", k)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("sim hub: %w", err)
	}
	return m, nil
}

func hubYamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	c.EnableKeepAlive = false
	return c
}

// ServeSimHub serves the media of this process to sim drivers in other
// processes (config sim_hub) until ln is closed.
func ServeSimHub(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go serveHubConn(c)
	}
}

func serveHubConn(c net.Conn) {
	sess, err := yamux.Server(c, hubYamuxConfig())
	if err != nil {
		_ = c.Close()
		return
	}
	defer sess.Close()
	st, err := sess.AcceptStream()
	if err != nil {
		return
	}
	req, err := hubReadJSON(st)
	if err != nil || req.Op != "start" || req.Params == nil || !simNameRE.MatchString(req.Medium) {
		_ = hubWriteJSON(st, hubMsg{Err: "sim hub: the first request must be start, with a medium and params"})
		return
	}
	d := newSimDriver(req.Medium, req.Name, *req.Params)
	if req.Seed != 0 {
		d.air.SetSeed(req.Seed)
	}
	if err := d.Start(context.Background()); err != nil {
		_ = hubWriteJSON(st, hubErrMsg(err))
		return
	}
	defer d.Close()
	if err := hubWriteJSON(st, hubMsg{Name: d.Device()}); err != nil {
		return
	}
	go func() {
		for {
			s, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go serveHubStream(sess, d, s)
		}
	}()
	// The device lives as long as its start stream.
	_, _ = io.Copy(io.Discard, st)
}

// streamCtx is cancelled when the peer closes s (or sends anything more).
func streamCtx(s net.Conn) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		var b [1]byte
		_, _ = s.Read(b[:])
		cancel()
	}()
	return ctx, cancel
}

func serveHubStream(sess *yamux.Session, d *simDevice, s net.Conn) {
	defer s.Close()
	req, err := hubReadJSON(s)
	if err != nil {
		return
	}
	switch req.Op {
	case "advertise":
		ctx, cancel := streamCtx(s)
		defer cancel()
		if err := d.Advertise(ctx, req.Adv, req.ID); err != nil {
			_ = hubWriteJSON(s, hubErrMsg(err))
			return
		}
		_ = hubWriteJSON(s, hubMsg{})
		<-ctx.Done()
	case "scan":
		ctx, cancel := streamCtx(s)
		defer cancel()
		ch, err := d.Scan(ctx)
		if err != nil {
			_ = hubWriteJSON(s, hubErrMsg(err))
			return
		}
		if hubWriteJSON(s, hubMsg{}) != nil {
			return
		}
		for a := range ch {
			if hubWriteJSON(s, hubMsg{Device: a.Device, Adv: a.Data}) != nil {
				return
			}
		}
	case "identity":
		ctx, cancel := streamCtx(s)
		defer cancel()
		id, err := d.ReadIdentity(ctx, req.Device)
		if err != nil {
			_ = hubWriteJSON(s, hubErrMsg(err))
			return
		}
		_ = hubWriteJSON(s, hubMsg{ID: id})
	case "listen":
		l, err := d.Listen(context.Background(), req.Addr)
		if err != nil {
			_ = hubWriteJSON(s, hubErrMsg(err))
			return
		}
		defer l.Close()
		if hubWriteJSON(s, hubMsg{Addr: l.Addr()}) != nil {
			return
		}
		ctx, cancel := streamCtx(s)
		defer cancel()
		for {
			lk, err := l.Accept(ctx)
			if err != nil {
				return
			}
			ls, err := sess.OpenStream()
			if err != nil {
				_ = lk.Close()
				return
			}
			if hubWriteJSON(ls, hubLinkMsg(lk, l.Addr())) != nil {
				_ = lk.Close()
				_ = ls.Close()
				continue
			}
			go hubPump(ls, lk)
		}
	case "dial":
		// The stream carries packets after the response, so its reads
		// cannot watch for a cancel: a dialler that gives up closes the
		// stream and the pump below closes the link.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		lk, err := d.Dial(ctx, req.Addr)
		cancel()
		if err != nil {
			_ = hubWriteJSON(s, hubErrMsg(err))
			return
		}
		if hubWriteJSON(s, hubLinkMsg(lk, "")) != nil {
			_ = lk.Close()
			return
		}
		hubPump(s, lk)
	default:
		_ = hubWriteJSON(s, hubMsg{Err: fmt.Sprintf("sim hub: unknown op %q", req.Op)})
	}
}

func hubLinkMsg(lk Link, listener string) hubMsg {
	return hubMsg{Addr: listener, Local: lk.LocalAddr(), Remote: lk.RemoteAddr(), RemoteDev: lk.RemoteDevice(),
		MTU: lk.MTU(), Ordered: lk.Ordered()}
}

// hubPump moves a link's packets to and from a stream, in the hub.
func hubPump(s net.Conn, lk Link) {
	go func() {
		for {
			p, err := lk.ReadPacket()
			if err != nil {
				b, _ := json.Marshal(hubErrMsg(err))
				_ = hubWrite(s, hubKindErr, b)
				_ = s.Close()
				return
			}
			if hubWrite(s, hubKindData, p) != nil {
				_ = lk.Close()
				return
			}
		}
	}()
	for {
		k, p, err := hubRead(s)
		if err != nil || k != hubKindData {
			_ = lk.Close()
			_ = s.Close()
			return
		}
		if err := lk.WritePacket(p, time.Time{}); err != nil {
			return // the reader above reports it
		}
	}
}

// hubDevice is a sim device on a medium served by a hub (the proxy).
type hubDevice struct {
	path, medium, want string
	params             SimParams
	seed               uint64

	mu        sync.Mutex
	started   bool
	name      string
	sess      *yamux.Session
	start     net.Conn
	listeners map[string]*hubListener
}

var _ Driver = (*hubDevice)(nil)

func newHubDriver(path, medium, name string, p SimParams, seed uint64) *hubDevice {
	return &hubDevice{path: path, medium: medium, want: name, params: p, seed: seed}
}

// hubs are the hubs this process serves, by socket path: one each.
var hubs struct {
	sync.Mutex
	m map[string]net.Listener
}

// dialHub connects to the hub at path; if none answers, this process
// serves it.
func dialHub(path string) (net.Conn, error) {
	for try := 0; ; try++ {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c, nil
		}
		if try >= 3 {
			return nil, fmt.Errorf("sim hub %s: %w", path, err)
		}
		hubs.Lock()
		if hubs.m == nil {
			hubs.m = map[string]net.Listener{}
		}
		if hubs.m[path] == nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				_ = os.Remove(path) // a socket left by a process gone
			}
			if ln, lerr := net.Listen("unix", path); lerr == nil {
				ln.(*net.UnixListener).SetUnlinkOnClose(true)
				hubs.m[path] = ln
				go func() { _ = ServeSimHub(ln) }()
			}
		}
		hubs.Unlock()
		time.Sleep(time.Duration(try) * 50 * time.Millisecond)
	}
}

func (h *hubDevice) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return fmt.Errorf("sim start: %w: already started", sdk.ErrLifecycle)
	}
	c, err := dialHub(h.path)
	if err != nil {
		return err
	}
	sess, err := yamux.Client(c, hubYamuxConfig())
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("sim hub: %w", err)
	}
	st, err := sess.OpenStream()
	if err == nil {
		p := h.params
		err = hubWriteJSON(st, hubMsg{Op: "start", Medium: h.medium, Name: h.want, Seed: h.seed, Params: &p})
	}
	var resp hubMsg
	if err == nil {
		resp, err = hubReadJSON(st)
	}
	if err == nil {
		err = hubErr(resp)
	}
	if err != nil {
		_ = sess.Close()
		return fmt.Errorf("sim start on hub %s: %w", h.path, err)
	}
	h.started, h.name, h.sess, h.start = true, resp.Name, sess, st
	h.listeners = map[string]*hubListener{}
	go h.acceptLinks(sess)
	return nil
}

// acceptLinks takes the links the hub accepted on this device's
// listeners.
func (h *hubDevice) acceptLinks(sess *yamux.Session) {
	for {
		s, err := sess.AcceptStream()
		if err != nil {
			return
		}
		m, err := hubReadJSON(s)
		if err != nil {
			_ = s.Close()
			continue
		}
		h.mu.Lock()
		l := h.listeners[m.Addr]
		h.mu.Unlock()
		lk := newHubLink(s, m)
		if l == nil {
			_ = lk.Close()
			continue
		}
		select {
		case l.ch <- lk:
		case <-l.done:
			_ = lk.Close()
		}
	}
}

func (h *hubDevice) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started {
		return nil
	}
	h.started = false
	for _, l := range h.listeners {
		l.shut()
	}
	_ = h.start.Close()
	return h.sess.Close()
}

func (h *hubDevice) Device() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.name
}

func (h *hubDevice) Profile() sdk.PacketProfile {
	return sdk.PacketProfile{MTU: h.params.MTU, Bandwidth: h.params.Bandwidth, Latency: h.params.Latency}
}

// call opens a stream and sends req; the stream is closed when ctx ends
// before done is called.
func (h *hubDevice) call(ctx context.Context, req hubMsg) (net.Conn, hubMsg, func(), error) {
	h.mu.Lock()
	sess, started := h.sess, h.started
	h.mu.Unlock()
	if !started {
		return nil, hubMsg{}, nil, fmt.Errorf("sim %s: %w", req.Op, ErrClosed)
	}
	s, err := sess.OpenStream()
	if err != nil {
		return nil, hubMsg{}, nil, fmt.Errorf("sim %s: %w: %v", req.Op, ErrClosed, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	done := func() { stop() }
	var resp hubMsg
	err = hubWriteJSON(s, req)
	if err == nil {
		resp, err = hubReadJSON(s)
	}
	if err == nil {
		err = hubErr(resp)
	}
	if err != nil {
		stop()
		_ = s.Close()
		if ctx.Err() != nil {
			return nil, resp, nil, ctx.Err()
		}
		return nil, resp, nil, fmt.Errorf("sim %s: %w", req.Op, err)
	}
	return s, resp, done, nil
}

func (h *hubDevice) Listen(ctx context.Context, addr string) (LinkListener, error) {
	s, resp, done, err := h.call(ctx, hubMsg{Op: "listen", Addr: addr})
	if err != nil {
		return nil, err
	}
	done()
	l := &hubListener{h: h, addr: resp.Addr, s: s, ch: make(chan Link), done: make(chan struct{})}
	h.mu.Lock()
	h.listeners[l.addr] = l
	h.mu.Unlock()
	return l, nil
}

func (h *hubDevice) Dial(ctx context.Context, addr string) (Link, error) {
	s, resp, done, err := h.call(ctx, hubMsg{Op: "dial", Addr: addr})
	if err != nil {
		return nil, err
	}
	done()
	return newHubLink(s, resp), nil
}

func (h *hubDevice) Advertise(ctx context.Context, adv, identity []byte) error {
	if len(adv) > MaxAdvertisement {
		return fmt.Errorf("%w: %d bytes", ErrAdvertisementSize, len(adv))
	}
	// The stream lives until ctx ends (call closes it then).
	_, _, _, err := h.call(ctx, hubMsg{Op: "advertise", Adv: adv, ID: identity})
	return err
}

func (h *hubDevice) Scan(ctx context.Context) (<-chan Advertisement, error) {
	s, _, _, err := h.call(ctx, hubMsg{Op: "scan"})
	if err != nil {
		return nil, err
	}
	out := make(chan Advertisement, 64)
	go func() {
		defer close(out)
		defer s.Close()
		for {
			m, err := hubReadJSON(s)
			if err != nil {
				return
			}
			select {
			case out <- Advertisement{Device: m.Device, Data: m.Adv}:
			case <-ctx.Done():
				return
			default: // a scanner that does not keep up misses some
			}
		}
	}()
	return out, nil
}

func (h *hubDevice) ReadIdentity(ctx context.Context, device string) ([]byte, error) {
	s, resp, done, err := h.call(ctx, hubMsg{Op: "identity", Device: device})
	if err != nil {
		return nil, err
	}
	done()
	_ = s.Close()
	return resp.ID, nil
}

type hubListener struct {
	h    *hubDevice
	addr string
	s    net.Conn
	ch   chan Link
	once sync.Once
	done chan struct{}
}

func (l *hubListener) Accept(ctx context.Context) (Link, error) {
	select {
	case lk := <-l.ch:
		return lk, nil
	case <-l.done:
		return nil, fmt.Errorf("sim accept: %w", ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *hubListener) Addr() string { return l.addr }

func (l *hubListener) shut() {
	l.once.Do(func() {
		close(l.done)
		_ = l.s.Close()
	})
}

func (l *hubListener) Close() error {
	l.h.mu.Lock()
	if l.h.listeners[l.addr] == l {
		delete(l.h.listeners, l.addr)
	}
	l.h.mu.Unlock()
	l.shut()
	return nil
}

// hubLink is a link whose packets cross the hub's socket.
type hubLink struct {
	s    net.Conn
	info hubMsg
	wmu  sync.Mutex
}

func newHubLink(s net.Conn, m hubMsg) *hubLink { return &hubLink{s: s, info: m} }

func (l *hubLink) ReadPacket() ([]byte, error) {
	k, p, err := hubRead(l.s)
	if err != nil {
		return nil, fmt.Errorf("sim link: %w: %v", ErrClosed, err)
	}
	switch k {
	case hubKindData:
		return p, nil
	case hubKindErr:
		var m hubMsg
		if json.Unmarshal(p, &m) != nil || m.Err == "" {
			return nil, fmt.Errorf("sim link: %w", ErrClosed)
		}
		return nil, hubErr(m)
	}
	return nil, fmt.Errorf("sim link: message of kind %d", k)
}

func (l *hubLink) WritePacket(p []byte, deadline time.Time) error {
	if len(p) > l.info.MTU {
		return fmt.Errorf("sim write: packet of %d bytes, MTU %d", len(p), l.info.MTU)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_ = l.s.SetWriteDeadline(deadline)
	err := hubWrite(l.s, hubKindData, p)
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// A packet cut short would break the framing: the link goes.
		_ = l.s.Close()
		return os.ErrDeadlineExceeded
	}
	return fmt.Errorf("sim write: %w: %v", ErrClosed, err)
}

func (l *hubLink) MTU() int             { return l.info.MTU }
func (l *hubLink) Ordered() bool        { return l.info.Ordered }
func (l *hubLink) LocalAddr() string    { return l.info.Local }
func (l *hubLink) RemoteAddr() string   { return l.info.Remote }
func (l *hubLink) RemoteDevice() string { return l.info.RemoteDev }
func (l *hubLink) Close() error         { return l.s.Close() }
