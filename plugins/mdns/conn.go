package mdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The multicast DNS groups (RFC 6762 section 3).
var (
	group4 = netip.MustParseAddr("224.0.0.251")
	group6 = netip.MustParseAddr("ff02::fb")
)

// mconn is one multicast DNS socket of one address family, bound to
// port 5353 on every address (shared with other responders on the machine
// through SO_REUSEADDR/SO_REUSEPORT), joined to the group on the chosen
// interfaces only. Each packet read says the interface it came in on,
// and each packet sent names the interface it goes out of.
type mconn struct {
	v6    bool
	raw   net.PacketConn
	p4    *ipv4.PacketConn
	p6    *ipv6.PacketConn
	group *net.UDPAddr
}

// listenMDNS opens the socket of one family.
func listenMDNS(ctx context.Context, v6 bool) (*mconn, error) {
	network, addr, grp := "udp4", "0.0.0.0", group4
	if v6 {
		network, addr, grp = "udp6", "::", group6
	}
	lc := net.ListenConfig{Control: reusePort}
	raw, err := lc.ListenPacket(ctx, network, net.JoinHostPort(addr, strconv.Itoa(mdnsPort)))
	if err != nil {
		return nil, fmt.Errorf("listen on %s port %d: %w", network, mdnsPort, err)
	}
	c := &mconn{v6: v6, raw: raw, group: &net.UDPAddr{IP: grp.AsSlice(), Port: mdnsPort}}
	if v6 {
		c.p6 = ipv6.NewPacketConn(raw)
		err = errors.Join(
			c.p6.SetControlMessage(ipv6.FlagInterface, true),
			c.p6.SetMulticastHopLimit(255),
			c.p6.SetMulticastLoopback(true))
	} else {
		c.p4 = ipv4.NewPacketConn(raw)
		err = errors.Join(
			c.p4.SetControlMessage(ipv4.FlagInterface, true),
			c.p4.SetMulticastTTL(255),
			c.p4.SetMulticastLoopback(true))
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("set up the %s multicast socket: %w", network, err)
	}
	return c, nil
}

// join joins the group on the interface.
func (c *mconn) join(index int) error {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return err
	}
	if c.v6 {
		return c.p6.JoinGroup(ifi, c.group)
	}
	return c.p4.JoinGroup(ifi, c.group)
}

// leave leaves the group on the interface (best effort: it may be gone).
func (c *mconn) leave(index int) {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return
	}
	if c.v6 {
		_ = c.p6.LeaveGroup(ifi, c.group)
		return
	}
	_ = c.p4.LeaveGroup(ifi, c.group)
}

// read reads one packet into buf: its length, the interface it came in
// on (0 if unknown) and its source.
func (c *mconn) read(buf []byte) (int, int, netip.AddrPort, error) {
	var (
		n     int
		index int
		from  net.Addr
		err   error
	)
	if c.v6 {
		var cm *ipv6.ControlMessage
		n, cm, from, err = c.p6.ReadFrom(buf)
		if cm != nil {
			index = cm.IfIndex
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, from, err = c.p4.ReadFrom(buf)
		if cm != nil {
			index = cm.IfIndex
		}
	}
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return 0, 0, netip.AddrPort{}, fmt.Errorf("read from %v: not a UDP address", from)
	}
	return n, index, ua.AddrPort(), nil
}

// send multicasts b out of the interface.
func (c *mconn) send(b []byte, index int) error {
	var err error
	if c.v6 {
		_, err = c.p6.WriteTo(b, &ipv6.ControlMessage{IfIndex: index}, c.group)
	} else {
		_, err = c.p4.WriteTo(b, &ipv4.ControlMessage{IfIndex: index}, c.group)
	}
	return err
}

func (c *mconn) close() error { return c.raw.Close() }
