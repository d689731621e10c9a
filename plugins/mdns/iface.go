package mdns

import (
	"net"
	"net/netip"
	"slices"
	"strings"
)

// ifaceInfo is one interface the plugin announces and listens on.
type ifaceInfo struct {
	index    int
	name     string
	loopback bool
	// prefixes are the interface's addresses with their subnets.
	prefixes []netip.Prefix
}

// v4 and v6 report whether the interface has an address of that family
// (IPv6: link-local counts; mDNS over IPv6 uses it).
func (i ifaceInfo) v4() bool {
	return slices.ContainsFunc(i.prefixes, func(p netip.Prefix) bool { return p.Addr().Is4() })
}

func (i ifaceInfo) v6() bool {
	return slices.ContainsFunc(i.prefixes, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

// onLink reports whether ip is on one of the interface's subnets.
func (i ifaceInfo) onLink(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	return slices.ContainsFunc(i.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// addrIP returns the IP of an "/ip4/<ip>/..." or "/ip6/<ip>/..."
// multiaddr. A zone (/ip6zone) or any other first protocol is not one.
func addrIP(a string) (netip.Addr, bool) {
	rest, ok := strings.CutPrefix(a, "/")
	if !ok {
		return netip.Addr{}, false
	}
	proto, rest, _ := strings.Cut(rest, "/")
	text, _, _ := strings.Cut(rest, "/")
	ip, err := netip.ParseAddr(text)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	switch {
	case proto == "ip4" && ip.Is4():
		return ip, true
	case proto == "ip6" && ip.Is6() && !ip.Is4In6():
		return ip, true
	}
	return netip.Addr{}, false
}

// dialable reports whether a peer on interface i may be dialled at ip:
// a unicast address on the interface's subnets (IPv4 link-local
// included: a LAN without DHCP), not IPv6 link-local (a multiaddr cannot
// carry the zone libp2p would need), and loopback only on a loopback
// interface.
func (i ifaceInfo) dialable(ip netip.Addr) bool {
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.Is6() && ip.IsLinkLocalUnicast():
		return false
	case ip.IsLoopback():
		return i.loopback
	}
	return i.onLink(ip)
}

// own reports whether ip is one of the interface's own addresses.
func (i ifaceInfo) own(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	return slices.ContainsFunc(i.prefixes, func(p netip.Prefix) bool { return p.Addr() == ip })
}

// announceable returns the addresses of addrs a host on interface i can
// dial this one at: those on the interface's own IPs (see dialable), in
// the order given. Never another interface's, never loopback on a
// non-loopback interface.
func (i ifaceInfo) announceable(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if ip, ok := addrIP(a); ok && i.dialable(ip) && i.own(ip) && wellFormedAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// acceptable returns the addresses of an announcement that came in on
// interface i from src that may be dialled, and how many were refused.
// An address must be on the sender itself: its IP is the packet's source,
// or, for a packet from an IPv6 link-local source (IPv6 mDNS always is),
// an IPv6 address on the link. A neighbour can so point this node's dials
// at itself only: not at another host of the LAN, another network, or
// this machine.
func (i ifaceInfo) acceptable(addrs []string, src netip.Addr) (out []string, refused int) {
	src = src.Unmap().WithZone("")
	for _, a := range addrs {
		ip, ok := addrIP(a)
		switch {
		case !ok || !i.dialable(ip):
			refused++
		case ip == src, src.Is6() && src.IsLinkLocalUnicast() && ip.Is6():
			out = append(out, a)
		default:
			refused++
		}
	}
	return out, refused
}

// listInterfaces returns the interfaces to use: those named (when any
// are), else every interface that is up, multicast-capable and not
// loopback. An interface named but absent or down is left out (and
// missing lists it).
func listInterfaces(named []string) (out []ifaceInfo, missing []string, err error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	for _, n := range named {
		if !slices.ContainsFunc(all, func(i net.Interface) bool { return i.Name == n && i.Flags&net.FlagUp != 0 }) {
			missing = append(missing, n)
		}
	}
	for _, ifi := range all {
		up := ifi.Flags&net.FlagUp != 0
		multicast := ifi.Flags&net.FlagMulticast != 0
		loopback := ifi.Flags&net.FlagLoopback != 0
		if len(named) > 0 {
			if !slices.Contains(named, ifi.Name) || !up {
				continue
			}
		} else if !up || !multicast || loopback {
			continue
		}
		info := ifaceInfo{index: ifi.Index, name: ifi.Name, loopback: loopback}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			ip = ip.Unmap()
			if ip.Is4() && ones > 32 {
				ones -= 96
			}
			info.prefixes = append(info.prefixes, netip.PrefixFrom(ip, ones))
		}
		if len(info.prefixes) > 0 {
			out = append(out, info)
		}
	}
	return out, missing, nil
}
