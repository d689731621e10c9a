package ble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
	"golang.org/x/sys/unix"

	"github.com/skein-p2p/skein/sdk"
)

// The BlueZ driver: discovery through bluetoothd over D-Bus (an
// LEAdvertisement1 for the advertisement, a GATT application with the
// identity characteristic, Adapter1 discovery for scanning, Device1 and
// GattCharacteristic1 to read a peer's identity), data over L2CAP
// channels through kernel sockets (l2cap_linux.go).
//
// The adapter is looked up lazily: a node whose adapter is not there yet
// (or whose bluetoothd is not running) starts, and each operation tries
// again and fails with ErrUnavailable until it is.

// ErrUnavailable: the radio is not available (no adapter, no BlueZ).
var ErrUnavailable = errors.New("ble: bluetooth adapter not available")

const (
	bluezService   = "org.bluez"
	ifaceAdapter   = "org.bluez.Adapter1"
	ifaceDevice    = "org.bluez.Device1"
	ifaceAdvMgr    = "org.bluez.LEAdvertisingManager1"
	ifaceAdv       = "org.bluez.LEAdvertisement1"
	ifaceGattMgr   = "org.bluez.GattManager1"
	ifaceGattSvc   = "org.bluez.GattService1"
	ifaceGattChar  = "org.bluez.GattCharacteristic1"
	ifaceObjMgr    = "org.freedesktop.DBus.ObjectManager"
	ifaceProps     = "org.freedesktop.DBus.Properties"
	bluezCallLimit = 10 * time.Second
)

type bluezDriver struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	conn     *dbus.Conn
	adapter  dbus.ObjectPath
	local    bdaddr
	identity []byte
	advGen   int
	advUp    bool // advertisement registered
	appUp    bool // GATT application registered
	scans    int
	nextPSM  int
	closed   bool

	listeners map[uint16]*bluezListener // by PSM, for GATT links
	gattUsers map[string]int            // GATT links per device (ReadIdentity leaves them connected)
	gatt      *gattServer
}

var _ Driver = (*bluezDriver)(nil)

func newBlueZDriver(cfg Config, logger *slog.Logger) (Driver, error) {
	b := &bluezDriver{cfg: cfg, log: logger.With("adapter", cfg.Adapter), listeners: map[uint16]*bluezListener{}, gattUsers: map[string]int{}}
	b.gatt = &gattServer{b: b, streams: map[uint32]*gattStream{}}
	return b, nil
}

func (b *bluezDriver) Start(ctx context.Context) error {
	if _, _, err := b.ensure(ctx); err != nil {
		b.log.Warn("ble: adapter not available yet; trying again at each use", "err", err)
	}
	return nil
}

// ensure connects to the system bus and powers the adapter on.
func (b *bluezDriver) ensure(ctx context.Context) (*dbus.Conn, bdaddr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bdaddr{}, ErrClosed
	}
	if b.conn != nil && b.conn.Connected() {
		return b.conn, b.local, nil
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, bdaddr{}, fmt.Errorf("%w: system bus: %v", ErrUnavailable, err)
	}
	path := dbus.ObjectPath("/org/bluez/" + b.cfg.Adapter)
	obj := conn.Object(bluezService, path)
	cctx, cancel := context.WithTimeout(ctx, bluezCallLimit)
	defer cancel()
	var addr, addrType string
	if err := obj.CallWithContext(cctx, ifaceProps+".Get", 0, ifaceAdapter, "Address").Store(&addr); err != nil {
		conn.Close()
		return nil, bdaddr{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, b.cfg.Adapter, err)
	}
	_ = obj.CallWithContext(cctx, ifaceProps+".Get", 0, ifaceAdapter, "AddressType").Store(&addrType)
	local, err := parseBDAddr(addr)
	if err != nil {
		conn.Close()
		return nil, bdaddr{}, fmt.Errorf("%w: adapter address %q", ErrUnavailable, addr)
	}
	local.random = addrType == "random"
	if err := obj.CallWithContext(cctx, ifaceProps+".Set", 0, ifaceAdapter, "Powered", dbus.MakeVariant(true)).Err; err != nil {
		conn.Close()
		return nil, bdaddr{}, fmt.Errorf("%w: power on %s: %v", ErrUnavailable, b.cfg.Adapter, err)
	}
	b.conn, b.adapter, b.local = conn, path, local
	b.log.Info("ble adapter ready", "address", local.String())
	return conn, local, nil
}

func (b *bluezDriver) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	go b.gatt.abortAll(ErrClosed)
	if b.conn != nil {
		b.unadvertiseLocked()
		_ = b.conn.Close()
		b.conn = nil
	}
	return nil
}

func (b *bluezDriver) Device() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return b.cfg.Adapter
	}
	return b.local.String()
}

func (b *bluezDriver) Profile() sdk.PacketProfile {
	// LE 1M PHY: about 1 Mbit/s on air, a few hundred kbit/s of payload.
	return sdk.PacketProfile{MTU: b.cfg.ChannelMTU, Bandwidth: 31250, Latency: 15 * time.Millisecond}
}

func (b *bluezDriver) Listen(ctx context.Context, addr string) (LinkListener, error) {
	_, local, err := b.ensure(ctx)
	if err != nil {
		return nil, err
	}
	var psm uint16
	if addr != "" && addr != "auto" {
		dev, p, err := parseL2CAPAddr(addr)
		if err != nil {
			return nil, err
		}
		if dev.addr != local.addr {
			return nil, fmt.Errorf("bluez listen %s: %w: not this adapter (%s)", addr, ErrBadAddress, local)
		}
		psm = p
	}
	var l *l2capListener
	if psm != 0 {
		l, err = listenL2CAP(local, psm, b.cfg.ChannelMTU)
	} else {
		// Dynamic LE PSMs (0x80-0xFF) in turn: the kernel would hand out
		// the one just closed again, which a peer's dial backoff may
		// still hold.
		for range 0x80 {
			b.mu.Lock()
			p := 0x80 + b.nextPSM%0x80
			b.nextPSM++
			b.mu.Unlock()
			if l, err = listenL2CAP(local, uint16(p), b.cfg.ChannelMTU); err == nil || !errors.Is(err, unix.EADDRINUSE) {
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}
	bl := &bluezListener{l2capListener: l, b: b, gatt: make(chan Link, gattSegmentQueue)}
	b.mu.Lock()
	b.listeners[l.psm] = bl
	b.mu.Unlock()
	// An LE device is dialled only while it advertises connectably: until
	// Advertise says more, advertise the service alone.
	conn, _, err := b.ensure(ctx)
	if err == nil {
		b.mu.Lock()
		if !b.advUp {
			uuid := uuidLE(ServiceUUID)
			adv := append([]byte{0x02, 0x01, 0x06, 0x11, 0x07}, uuid[:]...)
			if err := b.registerLocked(ctx, conn, adv, nil); err != nil {
				b.log.Warn("ble: cannot advertise; peers may not be able to connect", "err", err)
			}
		}
		b.mu.Unlock()
	}
	return bl, nil
}

func (b *bluezDriver) Dial(ctx context.Context, addr string) (Link, error) {
	remote, psm, err := parseL2CAPAddr(addr)
	if err != nil {
		return nil, err
	}
	conn, local, err := b.ensure(ctx)
	if err != nil {
		return nil, err
	}
	if b.cfg.GATTOnly {
		return b.dialGATTBlueZ(ctx, conn, remote, psm)
	}
	link, err := dialL2CAP(ctx, local, remote, psm, b.cfg.ChannelMTU)
	// A channel asked for while the LE connection under it is being set
	// up or torn down (bluetoothd's own GATT client uses it too) is reset
	// or refused now and then: two more tries before calling it refused.
	for try := 1; try <= 2 && err != nil && (errors.Is(err, ErrRefused) || errors.Is(err, unix.ECONNRESET)); try++ {
		if sleepCtx(ctx, time.Duration(try)*300*time.Millisecond) != nil {
			break
		}
		link, err = dialL2CAP(ctx, local, remote, psm, b.cfg.ChannelMTU)
	}
	if err != nil && errors.Is(err, ErrRefused) && b.cfg.GATTFallback {
		b.log.Info("ble: L2CAP channel refused; trying the GATT byte stream", "device", remote.String(), "err", err)
		glink, gerr := b.dialGATTBlueZ(ctx, conn, remote, psm)
		if gerr != nil {
			return nil, fmt.Errorf("%w; GATT byte stream: %v", err, gerr)
		}
		return glink, nil
	}
	return link, err
}

// adPieces splits an advertisement into what LEAdvertisement1 takes.
func adPieces(adv []byte) (uuids []string, mfr map[uint16]dbus.Variant) {
	mfr = map[uint16]dbus.Variant{}
	for b := adv; len(b) > 1; {
		l := int(b[0])
		if l == 0 || 1+l > len(b) {
			break
		}
		typ, data := b[1], b[2:1+l]
		switch typ {
		case 0x06, 0x07:
			for u := data; len(u) >= 16; u = u[16:] {
				uuids = append(uuids, uuidString(u[:16]))
			}
		case 0xFF:
			if len(data) >= 2 {
				mfr[binary.LittleEndian.Uint16(data)] = dbus.MakeVariant(slices.Clone(data[2:]))
			}
		}
		b = b[1+l:]
	}
	return uuids, mfr
}

// uuidString formats a 128-bit UUID given little-endian, as on the air.
func uuidString(le []byte) string {
	var be [16]byte
	for i := range 16 {
		be[i] = le[15-i]
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", be[0:4], be[4:6], be[6:8], be[8:10], be[10:16])
}

// rebuildAdvertisement makes the 31-byte form back from what BlueZ
// reports of a device.
func rebuildAdvertisement(uuids []string, mfr map[uint16]dbus.Variant) []byte {
	out := []byte{0x02, 0x01, 0x06}
	for _, u := range uuids {
		if strings.EqualFold(u, ServiceUUID) {
			le := uuidLE(ServiceUUID)
			out = append(out, 0x11, 0x07)
			out = append(out, le[:]...)
			break
		}
	}
	if v, ok := mfr[companyTest]; ok {
		if data, ok := v.Value().([]byte); ok && len(data) <= MaxAdvertisement {
			out = append(out, byte(3+len(data)), 0xFF, byte(companyTest&0xFF), byte(companyTest>>8))
			out = append(out, data...)
		}
	}
	return out
}

// advObject is the exported LEAdvertisement1.
type advObject struct{}

func (advObject) Release() *dbus.Error { return nil }

// charObject is the exported identity characteristic.
type charObject struct{ b *bluezDriver }

func (c charObject) ReadValue(options map[string]dbus.Variant) ([]byte, *dbus.Error) {
	c.b.mu.Lock()
	id := slices.Clone(c.b.identity)
	c.b.mu.Unlock()
	off := 0
	if v, ok := options["offset"]; ok {
		if o, ok := v.Value().(uint16); ok {
			off = int(o)
		}
	}
	if off > len(id) {
		return nil, dbus.NewError("org.bluez.Error.InvalidOffset", nil)
	}
	return id[off:], nil
}

// appObject is the GATT application's ObjectManager.
type appObject struct {
	objects map[dbus.ObjectPath]map[string]map[string]dbus.Variant
}

func (a appObject) GetManagedObjects() (map[dbus.ObjectPath]map[string]map[string]dbus.Variant, *dbus.Error) {
	return a.objects, nil
}

func (b *bluezDriver) paths() (app, svc, char, adv dbus.ObjectPath) {
	base := "/org/skein/ble/" + b.cfg.Adapter
	return dbus.ObjectPath(base), dbus.ObjectPath(base + "/service0"), dbus.ObjectPath(base + "/service0/char0"), dbus.ObjectPath(base + "/adv0")
}

// gattPaths are the GATT byte stream's characteristics.
func (b *bluezDriver) gattPaths() (rx, tx dbus.ObjectPath) {
	base := "/org/skein/ble/" + b.cfg.Adapter + "/service0"
	return dbus.ObjectPath(base + "/char1"), dbus.ObjectPath(base + "/char2")
}

func (b *bluezDriver) Advertise(ctx context.Context, adv, identity []byte) error {
	if len(adv) > MaxAdvertisement {
		return fmt.Errorf("%w: %d bytes", ErrAdvertisementSize, len(adv))
	}
	if len(identity) > MaxIdentity {
		return fmt.Errorf("bluez advertise: identity of %d bytes, at most %d", len(identity), MaxIdentity)
	}
	conn, _, err := b.ensure(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.registerLocked(ctx, conn, adv, identity); err != nil {
		return err
	}
	b.advGen++
	gen := b.advGen
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.advGen == gen {
			b.unadvertiseLocked()
		}
	}()
	return nil
}

// registerLocked (re)registers the advertisement and, with an identity,
// the GATT application serving it.
func (b *bluezDriver) registerLocked(ctx context.Context, conn *dbus.Conn, adv, identity []byte) error {
	b.unadvertiseLocked()
	b.identity = slices.Clone(identity)
	app, svc, char, advPath := b.paths()
	uuids, mfr := adPieces(adv)
	// The GATT application: one primary service, one read characteristic.
	svcProps := map[string]dbus.Variant{"UUID": dbus.MakeVariant(ServiceUUID), "Primary": dbus.MakeVariant(true)}
	charProps := map[string]dbus.Variant{"UUID": dbus.MakeVariant(IdentityUUID), "Service": dbus.MakeVariant(svc),
		"Flags": dbus.MakeVariant([]string{"read"})}
	rx, tx := b.gattPaths()
	rxProps := map[string]dbus.Variant{"UUID": dbus.MakeVariant(RXUUID), "Service": dbus.MakeVariant(svc),
		"Flags": dbus.MakeVariant([]string{"write-without-response"})}
	txProps := map[string]dbus.Variant{"UUID": dbus.MakeVariant(TXUUID), "Service": dbus.MakeVariant(svc),
		"Flags": dbus.MakeVariant([]string{"notify"})}
	objects := map[dbus.ObjectPath]map[string]map[string]dbus.Variant{
		svc: {ifaceGattSvc: svcProps}, char: {ifaceGattChar: charProps},
		rx: {ifaceGattChar: rxProps}, tx: {ifaceGattChar: txProps},
	}
	if err := conn.Export(appObject{objects: objects}, app, ifaceObjMgr); err != nil {
		return fmt.Errorf("bluez export application: %w", err)
	}
	if _, err := prop.Export(conn, svc, prop.Map{ifaceGattSvc: propsOf(svcProps)}); err != nil {
		return fmt.Errorf("bluez export service: %w", err)
	}
	if err := conn.Export(charObject{b: b}, char, ifaceGattChar); err != nil {
		return fmt.Errorf("bluez export characteristic: %w", err)
	}
	if _, err := prop.Export(conn, char, prop.Map{ifaceGattChar: propsOf(charProps)}); err != nil {
		return fmt.Errorf("bluez export characteristic: %w", err)
	}
	if err := conn.Export(rxObject{s: b.gatt}, rx, ifaceGattChar); err != nil {
		return fmt.Errorf("bluez export characteristic: %w", err)
	}
	if _, err := prop.Export(conn, rx, prop.Map{ifaceGattChar: propsOf(rxProps)}); err != nil {
		return fmt.Errorf("bluez export characteristic: %w", err)
	}
	if err := conn.Export(txObject{}, tx, ifaceGattChar); err != nil {
		return fmt.Errorf("bluez export characteristic: %w", err)
	}
	if _, err := prop.Export(conn, tx, prop.Map{ifaceGattChar: propsOf(txProps)}); err != nil {
		return fmt.Errorf("bluez export characteristic: %w", err)
	}
	// The advertisement.
	advProps := map[string]dbus.Variant{"Type": dbus.MakeVariant("peripheral"), "ServiceUUIDs": dbus.MakeVariant(uuids),
		"ManufacturerData": dbus.MakeVariant(mfr)}
	if err := conn.Export(advObject{}, advPath, ifaceAdv); err != nil {
		return fmt.Errorf("bluez export advertisement: %w", err)
	}
	if _, err := prop.Export(conn, advPath, prop.Map{ifaceAdv: propsOf(advProps)}); err != nil {
		return fmt.Errorf("bluez export advertisement: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, bluezCallLimit)
	defer cancel()
	ad := conn.Object(bluezService, b.adapter)
	// The application goes up without an identity too: the GATT byte
	// stream's characteristics serve the listeners.
	if err := ad.CallWithContext(cctx, ifaceGattMgr+".RegisterApplication", 0, app, map[string]dbus.Variant{}).Err; err != nil {
		b.unexportLocked()
		return fmt.Errorf("bluez register GATT application: %w", err)
	}
	b.appUp = true
	if err := ad.CallWithContext(cctx, ifaceAdvMgr+".RegisterAdvertisement", 0, advPath, map[string]dbus.Variant{}).Err; err != nil {
		if b.appUp {
			_ = ad.Call(ifaceGattMgr+".UnregisterApplication", 0, app).Err
			b.appUp = false
		}
		b.unexportLocked()
		return fmt.Errorf("bluez register advertisement: %w", err)
	}
	b.advUp = true
	return nil
}

func propsOf(m map[string]dbus.Variant) map[string]*prop.Prop {
	out := map[string]*prop.Prop{}
	for k, v := range m {
		out[k] = &prop.Prop{Value: v.Value(), Emit: prop.EmitFalse}
	}
	return out
}

// unadvertiseLocked withdraws the advertisement and the application.
func (b *bluezDriver) unadvertiseLocked() {
	if !b.advUp || b.conn == nil {
		return
	}
	b.advUp = false
	app, _, _, advPath := b.paths()
	ad := b.conn.Object(bluezService, b.adapter)
	_ = ad.Call(ifaceAdvMgr+".UnregisterAdvertisement", 0, advPath).Err
	if b.appUp {
		_ = ad.Call(ifaceGattMgr+".UnregisterApplication", 0, app).Err
		b.appUp = false
	}
	b.unexportLocked()
}

func (b *bluezDriver) unexportLocked() {
	app, svc, char, advPath := b.paths()
	rx, tx := b.gattPaths()
	for _, p := range []dbus.ObjectPath{app, svc, char, advPath, rx, tx} {
		for _, iface := range []string{ifaceObjMgr, ifaceGattChar, ifaceAdv, ifaceProps} {
			_ = b.conn.Export(nil, p, iface)
		}
	}
}

// devicePath is the object path of a device on the adapter.
func (b *bluezDriver) devicePath(addr string) dbus.ObjectPath {
	return dbus.ObjectPath(string(b.adapter) + "/dev_" + strings.ReplaceAll(addr, ":", "_"))
}

func (b *bluezDriver) Scan(ctx context.Context) (<-chan Advertisement, error) {
	conn, _, err := b.ensure(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	adapter := b.adapter
	b.mu.Unlock()
	sigs := make(chan *dbus.Signal, 256)
	conn.Signal(sigs)
	opts := []dbus.MatchOption{dbus.WithMatchPathNamespace(adapter)}
	_ = conn.AddMatchSignal(append(opts, dbus.WithMatchInterface(ifaceProps), dbus.WithMatchMember("PropertiesChanged"))...)
	_ = conn.AddMatchSignal(dbus.WithMatchInterface(ifaceObjMgr), dbus.WithMatchMember("InterfacesAdded"))
	ad := conn.Object(bluezService, adapter)
	cctx, cancel := context.WithTimeout(ctx, bluezCallLimit)
	defer cancel()
	filter := map[string]dbus.Variant{"Transport": dbus.MakeVariant("le"), "DuplicateData": dbus.MakeVariant(true),
		"UUIDs": dbus.MakeVariant([]string{ServiceUUID})}
	if err := ad.CallWithContext(cctx, ifaceAdapter+".SetDiscoveryFilter", 0, filter).Err; err != nil {
		b.log.Debug("ble: discovery filter refused", "err", err)
	}
	b.mu.Lock()
	b.scans++
	first := b.scans == 1
	b.mu.Unlock()
	if first {
		if err := ad.CallWithContext(cctx, ifaceAdapter+".StartDiscovery", 0).Err; err != nil && !strings.Contains(err.Error(), "InProgress") {
			conn.RemoveSignal(sigs)
			b.mu.Lock()
			b.scans--
			b.mu.Unlock()
			return nil, fmt.Errorf("bluez start discovery: %w", err)
		}
	}
	out := make(chan Advertisement, 64)
	go func() {
		defer close(out)
		defer func() {
			conn.RemoveSignal(sigs)
			b.mu.Lock()
			b.scans--
			last := b.scans == 0
			b.mu.Unlock()
			if last {
				_ = ad.Call(ifaceAdapter+".StopDiscovery", 0).Err
			}
		}()
		emit := func(a Advertisement) {
			select {
			case out <- a:
			default: // a scanner that does not keep up misses some
			}
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for _, a := range b.knownDevices(ctx, conn, adapter) {
			emit(a)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, a := range b.knownDevices(ctx, conn, adapter) {
					emit(a)
				}
			case s, ok := <-sigs:
				if !ok {
					return
				}
				if s.Name == ifaceObjMgr+".InterfacesAdded" || (s.Name == ifaceProps+".PropertiesChanged" && strings.HasPrefix(string(s.Path), string(adapter)+"/dev_")) {
					if a, ok := b.deviceAdvertisement(ctx, conn, s.Path); ok {
						emit(a)
					}
				}
			}
		}
	}()
	return out, nil
}

// knownDevices lists the adapter's devices that advertise the Skein
// service, with their advertisements rebuilt.
func (b *bluezDriver) knownDevices(ctx context.Context, conn *dbus.Conn, adapter dbus.ObjectPath) []Advertisement {
	cctx, cancel := context.WithTimeout(ctx, bluezCallLimit)
	defer cancel()
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := conn.Object(bluezService, "/").CallWithContext(cctx, ifaceObjMgr+".GetManagedObjects", 0).Store(&objs); err != nil {
		return nil
	}
	var out []Advertisement
	for path, ifaces := range objs {
		if !strings.HasPrefix(string(path), string(adapter)+"/dev_") {
			continue
		}
		if a, ok := advertisementOf(ifaces[ifaceDevice]); ok {
			out = append(out, a)
		}
	}
	return out
}

func (b *bluezDriver) deviceAdvertisement(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) (Advertisement, bool) {
	cctx, cancel := context.WithTimeout(ctx, bluezCallLimit)
	defer cancel()
	var props map[string]dbus.Variant
	if err := conn.Object(bluezService, path).CallWithContext(cctx, ifaceProps+".GetAll", 0, ifaceDevice).Store(&props); err != nil {
		return Advertisement{}, false
	}
	return advertisementOf(props)
}

func advertisementOf(props map[string]dbus.Variant) (Advertisement, bool) {
	if props == nil {
		return Advertisement{}, false
	}
	addr, _ := props["Address"].Value().(string)
	uuids, _ := props["UUIDs"].Value().([]string)
	mfr, _ := props["ManufacturerData"].Value().(map[uint16]dbus.Variant)
	if addr == "" || !slices.ContainsFunc(uuids, func(u string) bool { return strings.EqualFold(u, ServiceUUID) }) {
		return Advertisement{}, false
	}
	return Advertisement{Device: addr, Data: rebuildAdvertisement(uuids, mfr)}, true
}

func (b *bluezDriver) ReadIdentity(ctx context.Context, device string) ([]byte, error) {
	if _, err := parseBDAddr(device); err != nil {
		return nil, err
	}
	conn, _, err := b.ensure(ctx)
	if err != nil {
		return nil, err
	}
	path := b.devicePath(device)
	dev := conn.Object(bluezService, path)
	if err := dev.CallWithContext(ctx, ifaceDevice+".Connect", 0).Err; err != nil {
		return nil, fmt.Errorf("bluez connect %s: %w: %v", device, ErrOutOfRange, err)
	}
	defer func() {
		b.mu.Lock()
		inUse := b.gattUsers[device] > 0
		b.mu.Unlock()
		if !inUse { // a GATT link to the device needs the connection
			_ = dev.Call(ifaceDevice+".Disconnect", 0).Err
		}
	}()
	for {
		var resolved bool
		if err := dev.CallWithContext(ctx, ifaceProps+".Get", 0, ifaceDevice, "ServicesResolved").Store(&resolved); err != nil {
			return nil, fmt.Errorf("bluez %s: services: %w", device, err)
		}
		if resolved {
			break
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := conn.Object(bluezService, "/").CallWithContext(ctx, ifaceObjMgr+".GetManagedObjects", 0).Store(&objs); err != nil {
		return nil, fmt.Errorf("bluez %s: objects: %w", device, err)
	}
	for p, ifaces := range objs {
		ch, ok := ifaces[ifaceGattChar]
		if !ok || !strings.HasPrefix(string(p), string(path)+"/") {
			continue
		}
		if u, _ := ch["UUID"].Value().(string); !strings.EqualFold(u, IdentityUUID) {
			continue
		}
		var v []byte
		if err := conn.Object(bluezService, p).CallWithContext(ctx, ifaceGattChar+".ReadValue", 0, map[string]dbus.Variant{}).Store(&v); err != nil {
			return nil, fmt.Errorf("bluez %s: read identity: %w", device, err)
		}
		if len(v) > MaxIdentity {
			v = v[:MaxIdentity]
		}
		return v, nil
	}
	return nil, fmt.Errorf("bluez %s: %w: no Skein identity characteristic", device, ErrRefused)
}
