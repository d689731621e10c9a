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
// carry the zone libp2p would need), and loopback only on
// a loopback interface. Anything else would let a LAN neighbour point the
// node's dials elsewhere (at another network, or at this machine itself).
func (i ifaceInfo) dialable(ip netip.Addr) bool {
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.Is6() && ip.IsLinkLocalUnicast():
		return false
	case ip.IsLoopback():
		return i.loopback
	}
	return i.onLink(ip)
}

// announceable returns the addresses of addrs that a host on interface i
// can dial: see dialable. In the order given.
func (i ifaceInfo) announceable(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if ip, ok := addrIP(a); ok && i.dialable(ip) && wellFormedAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// acceptable returns the addresses of a received announcement that may
// be dialled from interface i, and how many were refused.
func (i ifaceInfo) acceptable(addrs []string) (out []string, refused int) {
	for _, a := range addrs {
		if ip, ok := addrIP(a); ok && i.dialable(ip) {
			out = append(out, a)
		} else {
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
