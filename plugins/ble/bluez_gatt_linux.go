package ble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// The GATT byte stream over BlueZ (the fallback where a peer refuses
// L2CAP channels, gattstream.go). The listening side serves two more
// characteristics in its GATT application: RX (write without response:
// what diallers send) and TX (notify: what it sends, to every subscribed
// central, each keeping the segments of its own links). The dialling side
// connects to the device, acquires TX's notifications and RX's writes as
// sockets (AcquireNotify, AcquireWrite: ordered, bluetoothd passes the
// values through), or where BlueZ refuses those, StartNotify with
// PropertiesChanged signals and WriteValue of type "command".

const gattSegmentQueue = 8 // accepted GATT links waiting per listener

// gattServer is the listening side's end of every GATT link.
type gattServer struct {
	b *bluezDriver

	mu      sync.Mutex
	streams map[uint32]*gattStream
	sendMu  sync.Mutex // one notification at a time, in order
}

// rxObject is the exported RX characteristic.
type rxObject struct{ s *gattServer }

func (r rxObject) WriteValue(value []byte, options map[string]dbus.Variant) *dbus.Error {
	dev := ""
	if v, ok := options["device"]; ok {
		if p, ok := v.Value().(dbus.ObjectPath); ok {
			dev = deviceAddress(p)
		}
	}
	r.s.input(value, dev)
	return nil
}

func (r rxObject) ReadValue(map[string]dbus.Variant) ([]byte, *dbus.Error) {
	return nil, dbus.NewError("org.bluez.Error.NotPermitted", nil)
}

// txObject is the exported TX characteristic.
type txObject struct{}

func (txObject) StartNotify() *dbus.Error { return nil }
func (txObject) StopNotify() *dbus.Error  { return nil }
func (txObject) ReadValue(map[string]dbus.Variant) ([]byte, *dbus.Error) {
	return []byte{}, nil
}

// deviceAddress is the address in a device's object path.
func deviceAddress(p dbus.ObjectPath) string {
	_, dev, ok := strings.Cut(string(p), "/dev_")
	if !ok {
		return ""
	}
	return strings.ReplaceAll(dev, "_", ":")
}

// notify sends one value to the subscribed centrals.
func (s *gattServer) notify(p []byte) error {
	s.b.mu.Lock()
	conn := s.b.conn
	up := s.b.appUp
	s.b.mu.Unlock()
	if conn == nil || !up {
		return ErrClosed
	}
	_, tx := s.b.gattPaths()
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return conn.Emit(tx, ifaceProps+".PropertiesChanged", ifaceGattChar,
		map[string]dbus.Variant{"Value": dbus.MakeVariant(p)}, []string{})
}

// input takes one value a central wrote to RX.
func (s *gattServer) input(p []byte, dev string) {
	seg, err := decodeSegment(p, gattMaxValue)
	if err != nil {
		s.b.log.Debug("ble: bad GATT value written", "device", dev, "err", err)
		return
	}
	s.mu.Lock()
	st := s.streams[seg.link]
	s.mu.Unlock()
	if st != nil {
		st.input(p)
		return
	}
	if seg.kind != segOpen {
		if seg.kind != segReset {
			go func() { _ = s.notify(resetSegment(seg.link)) }()
		}
		return
	}
	s.open(seg, dev)
}

// open answers a central's segOpen: a stream for the listener on the PSM
// it names, or a reset.
func (s *gattServer) open(seg segment, dev string) {
	_, psm, err := parseOpen(seg)
	s.b.mu.Lock()
	l := s.b.listeners[psm]
	s.b.mu.Unlock()
	if err != nil || l == nil {
		s.b.log.Debug("ble: GATT link refused", "device", dev, "psm", psm, "err", err)
		go func() { _ = s.notify(resetSegment(seg.link)) }()
		return
	}
	remote := dev + "@gatt"
	st, _, err := acceptGATT(seg, gattMaxValue, s.notify, s.b.log.With("peer", dev, "gatt", true), l.addr, remote, dev)
	if err != nil {
		go func() { _ = s.notify(resetSegment(seg.link)) }()
		return
	}
	id := seg.link
	st.onClose = func() {
		s.mu.Lock()
		if s.streams[id] == st {
			delete(s.streams, id)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.streams[id] = st
	s.mu.Unlock()
	select {
	case l.gatt <- st:
	default:
		s.b.log.Warn("ble: GATT link refused: the listener's queue is full", "device", dev)
		st.finish()
		go func() { _ = s.notify(resetSegment(id)) }()
	}
}

// abortAll ends every GATT link served (the application went away).
func (s *gattServer) abortAll(err error) {
	s.mu.Lock()
	all := make([]*gattStream, 0, len(s.streams))
	for _, st := range s.streams {
		all = append(all, st)
	}
	s.mu.Unlock()
	for _, st := range all {
		st.abort(err)
	}
}

// bluezListener is an L2CAP listener that also takes the GATT links
// opened to its PSM.
type bluezListener struct {
	*l2capListener
	b    *bluezDriver
	gatt chan Link
}

func (l *bluezListener) Accept(ctx context.Context) (Link, error) {
	for {
		select {
		case s := <-l.gatt:
			return s, nil
		default:
		}
		// One short wait on the channel's socket, then look again.
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		link, err := l.l2capListener.Accept(pctx)
		cancel()
		switch {
		case err == nil:
			return link, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			continue
		default:
			return nil, err
		}
	}
}

func (l *bluezListener) Close() error {
	l.b.mu.Lock()
	if l.b.listeners[l.psm] == l {
		delete(l.b.listeners, l.psm)
	}
	l.b.mu.Unlock()
	err := l.l2capListener.Close()
	for {
		select {
		case s := <-l.gatt:
			_ = s.Close()
		default:
			return err
		}
	}
}

// dialGATTBlueZ opens a link to remote's psm over the GATT byte stream.
func (b *bluezDriver) dialGATTBlueZ(ctx context.Context, conn *dbus.Conn, remote bdaddr, psm uint16) (Link, error) {
	dev := remote.String()
	path := b.devicePath(dev)
	if err := b.knowDevice(ctx, conn, path, dev); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.gattUsers[dev]++
	b.mu.Unlock()
	release := func() {
		b.mu.Lock()
		b.gattUsers[dev]--
		last := b.gattUsers[dev] <= 0
		if last {
			delete(b.gattUsers, dev)
		}
		b.mu.Unlock()
		if last {
			_ = conn.Object(bluezService, path).Call(ifaceDevice+".Disconnect", 0).Err
		}
	}
	rx, tx, err := b.connectGATT(ctx, conn, path, dev)
	if err != nil {
		release()
		return nil, err
	}
	pipe, err := b.acquirePipe(ctx, conn, rx, tx)
	if err != nil {
		release()
		return nil, fmt.Errorf("bluez %s: GATT byte stream: %w", dev, err)
	}
	b.log.Debug("ble: GATT byte stream", "device", dev, "notify", pipe.notifyHow, "write", pipe.writeHow, "value", pipe.value)
	local := l2capAddr(b.local, 0)
	local = strings.TrimSuffix(local, "@0") + "@gatt"
	s := newGATTStream(rand.Uint32(), pipe.value, pipe.write, b.log.With("peer", dev, "gatt", true), local, l2capAddr(remote, psm), dev)
	s.onClose = func() { pipe.close(); release() }
	go func() {
		for {
			p, err := pipe.read()
			if err != nil {
				s.abort(fmt.Errorf("%w: %v", ErrLinkLost, err))
				return
			}
			s.input(p)
		}
	}()
	if err := dialGATT(ctx, s, psm); err != nil {
		s.finish()
		if errors.Is(err, ErrGATTRefused) {
			return nil, fmt.Errorf("bluez %s psm %d over GATT: %w: %w", dev, psm, ErrRefused, err)
		}
		return nil, fmt.Errorf("bluez %s psm %d over GATT: %w", dev, psm, err)
	}
	return s, nil
}

// knowDevice makes sure BlueZ has the device's object: a device it has
// not heard yet is looked for by scanning (at most 15 s).
func (b *bluezDriver) knowDevice(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, dev string) error {
	var addr string
	if conn.Object(bluezService, path).CallWithContext(ctx, ifaceProps+".Get", 0, ifaceDevice, "Address").Store(&addr) == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ads, err := b.Scan(sctx)
	if err != nil {
		return fmt.Errorf("bluez %s: scan for the device: %w", dev, err)
	}
	for a := range ads {
		if strings.EqualFold(a.Device, dev) {
			cancel()
			for range ads { // the scan's end
			}
			return nil
		}
	}
	return fmt.Errorf("bluez %s: %w: not heard advertising", dev, ErrOutOfRange)
}

// connectGATT connects to the device and finds its RX and TX.
func (b *bluezDriver) connectGATT(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, dev string) (rx, tx dbus.ObjectPath, err error) {
	obj := conn.Object(bluezService, path)
	var connected bool
	_ = obj.CallWithContext(ctx, ifaceProps+".Get", 0, ifaceDevice, "Connected").Store(&connected)
	if !connected {
		cctx, cancel := context.WithTimeout(ctx, 2*bluezCallLimit)
		err := obj.CallWithContext(cctx, ifaceDevice+".Connect", 0).Err
		cancel()
		if err != nil {
			return "", "", fmt.Errorf("bluez connect %s: %w: %v", dev, ErrOutOfRange, err)
		}
	}
	deadline := time.Now().Add(2 * bluezCallLimit)
	for {
		var resolved bool
		if err := obj.CallWithContext(ctx, ifaceProps+".Get", 0, ifaceDevice, "ServicesResolved").Store(&resolved); err != nil {
			return "", "", fmt.Errorf("bluez %s: services: %w", dev, err)
		}
		if resolved {
			break
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("bluez %s: %w: services not resolved", dev, ErrOutOfRange)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return "", "", err
		}
	}
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := conn.Object(bluezService, "/").CallWithContext(ctx, ifaceObjMgr+".GetManagedObjects", 0).Store(&objs); err != nil {
		return "", "", fmt.Errorf("bluez %s: objects: %w", dev, err)
	}
	for p, ifaces := range objs {
		ch, ok := ifaces[ifaceGattChar]
		if !ok || !strings.HasPrefix(string(p), string(path)+"/") {
			continue
		}
		switch u, _ := ch["UUID"].Value().(string); {
		case strings.EqualFold(u, RXUUID):
			rx = p
		case strings.EqualFold(u, TXUUID):
			tx = p
		}
	}
	if rx == "" || tx == "" {
		return "", "", fmt.Errorf("bluez %s: %w: no Skein GATT byte stream characteristics", dev, ErrRefused)
	}
	return rx, tx, nil
}

// gattPipe is the central's side of the characteristic pair.
type gattPipe struct {
	value              int
	notifyHow          string
	writeHow           string
	read               func() ([]byte, error)
	write              func([]byte) error
	close              func()
	closeOnce          sync.Once
	notifyF, writeF    *os.File
	signals            chan *dbus.Signal
	conn               *dbus.Conn
	tx                 dbus.ObjectPath
	done               chan struct{}
	stopNotifyRequired bool
}

// acquirePipe gets TX's notifications and RX's writes: sockets where BlueZ
// hands them out, D-Bus calls and signals where not.
func (b *bluezDriver) acquirePipe(ctx context.Context, conn *dbus.Conn, rx, tx dbus.ObjectPath) (*gattPipe, error) {
	p := &gattPipe{conn: conn, tx: tx, done: make(chan struct{}), value: gattMaxValue}
	cctx, cancel := context.WithTimeout(ctx, bluezCallLimit)
	defer cancel()
	var fd dbus.UnixFD
	var mtu uint16
	if err := conn.Object(bluezService, tx).CallWithContext(cctx, ifaceGattChar+".AcquireNotify", 0, map[string]dbus.Variant{}).Store(&fd, &mtu); err == nil {
		p.notifyHow = "AcquireNotify"
		p.notifyF = os.NewFile(uintptr(fd), "gatt notify")
		p.value = min(p.value, int(mtu)-3)
		buf := make([]byte, max(int(mtu), gattMaxValue)+1)
		p.read = func() ([]byte, error) {
			n, err := p.notifyF.Read(buf)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, io.EOF
			}
			return append([]byte(nil), buf[:n]...), nil
		}
	} else {
		b.log.Debug("ble: AcquireNotify refused; notifications over D-Bus signals", "err", err)
		p.notifyHow = "StartNotify"
		p.signals = make(chan *dbus.Signal, 256)
		conn.Signal(p.signals)
		_ = conn.AddMatchSignal(dbus.WithMatchObjectPath(tx), dbus.WithMatchInterface(ifaceProps), dbus.WithMatchMember("PropertiesChanged"))
		if err := conn.Object(bluezService, tx).CallWithContext(cctx, ifaceGattChar+".StartNotify", 0).Err; err != nil {
			conn.RemoveSignal(p.signals)
			return nil, fmt.Errorf("notifications: AcquireNotify and StartNotify refused: %w", err)
		}
		p.stopNotifyRequired = true
		p.read = func() ([]byte, error) {
			for {
				select {
				case <-p.done:
					return nil, ErrClosed
				case sig, ok := <-p.signals:
					if !ok {
						return nil, ErrClosed
					}
					if sig.Path != tx || sig.Name != ifaceProps+".PropertiesChanged" || len(sig.Body) < 2 {
						continue
					}
					changed, _ := sig.Body[1].(map[string]dbus.Variant)
					if v, ok := changed["Value"]; ok {
						if data, ok := v.Value().([]byte); ok {
							return data, nil
						}
					}
				}
			}
		}
	}
	if err := conn.Object(bluezService, rx).CallWithContext(cctx, ifaceGattChar+".AcquireWrite", 0, map[string]dbus.Variant{}).Store(&fd, &mtu); err == nil {
		p.writeHow = "AcquireWrite"
		p.writeF = os.NewFile(uintptr(fd), "gatt write")
		p.value = min(p.value, int(mtu)-3)
		p.write = func(v []byte) error {
			for {
				_, err := p.writeF.Write(v)
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS) {
					// bluetoothd's queue is full: a moment, then again.
					if err := sleepCtx(context.Background(), 5*time.Millisecond); err != nil {
						return err
					}
					select {
					case <-p.done:
						return ErrClosed
					default:
					}
					continue
				}
				return err
			}
		}
	} else {
		b.log.Debug("ble: AcquireWrite refused; writes over D-Bus", "err", err)
		p.writeHow = "WriteValue"
		obj := conn.Object(bluezService, rx)
		p.write = func(v []byte) error {
			wctx, cancel := context.WithTimeout(context.Background(), bluezCallLimit)
			defer cancel()
			return obj.CallWithContext(wctx, ifaceGattChar+".WriteValue", 0, v, map[string]dbus.Variant{"type": dbus.MakeVariant("command")}).Err
		}
	}
	if p.value < gattMinValue {
		p.close = func() {}
		p.shut()
		return nil, fmt.Errorf("ATT MTU %d: too small", p.value+3)
	}
	p.close = p.shut
	return p, nil
}

func (p *gattPipe) shut() {
	p.closeOnce.Do(func() {
		close(p.done)
		if p.notifyF != nil {
			_ = p.notifyF.Close()
		}
		if p.writeF != nil {
			_ = p.writeF.Close()
		}
		if p.signals != nil {
			p.conn.RemoveSignal(p.signals)
		}
		if p.stopNotifyRequired {
			_ = p.conn.Object(bluezService, p.tx).Call(ifaceGattChar+".StopNotify", 0).Err
		}
	})
}
