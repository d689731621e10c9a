//go:build linux

package netns

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

// The LAN helpers: the test binary re-executed inside a namespace (see
// TestMain and runHelper).

var (
	mdnsGroup  = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	mdnsGroup6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353}
)

// runObserver prints every multicast DNS packet, IPv4 and IPv6, that
// reaches the namespace's eth0, one JSON object a line, until it is
// killed.
func runObserver() int {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		return 1
	}
	var conns []*net.UDPConn
	for _, g := range []struct {
		network string
		addr    *net.UDPAddr
	}{{"udp4", mdnsGroup}, {"udp6", mdnsGroup6}} {
		c, err := net.ListenMulticastUDP(g.network, ifi, g.addr)
		if err != nil {
			if g.network == "udp6" {
				continue // no IPv6 in the namespace
			}
			fmt.Fprintln(os.Stderr, "observe:", err)
			return 1
		}
		conns = append(conns, c)
	}
	var mu sync.Mutex
	fmt.Println("observing")
	done := make(chan int)
	for _, c := range conns {
		go func() {
			buf := make([]byte, 9000)
			for {
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					fmt.Fprintln(os.Stderr, "observe:", err)
					done <- 1
					return
				}
				line, _ := json.Marshal(map[string]any{"at": time.Now().UnixNano(), "src": from.String(), "data": hex.EncodeToString(buf[:n])})
				mu.Lock()
				fmt.Println(string(line))
				mu.Unlock()
			}
		}()
	}
	return <-done
}

// floodConfig is the flooder's job, passed as "rate,seconds,victim,src1 src2 ...".
type floodConfig struct {
	rate    int           // packets per second
	period  time.Duration // how long
	victim  string        // a peer id the flood claims as its own
	sources []string      // local addresses to send from
}

func parseFloodConfig(s string) (floodConfig, error) {
	f := strings.SplitN(s, ",", 4)
	if len(f) != 4 {
		return floodConfig{}, fmt.Errorf("flood config %q", s)
	}
	rate, err1 := strconv.Atoi(f[0])
	secs, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return floodConfig{}, fmt.Errorf("flood config %q", s)
	}
	return floodConfig{rate: rate, period: time.Duration(secs) * time.Second, victim: f[2], sources: strings.Fields(f[3])}, nil
}

// runFlooder sends multicast DNS at the configured rate from each source
// address in turn: responses announcing a new fake peer each (a real
// libp2p peer id, an address on the LAN where no host answers), responses
// naming the victim's peer id, oversized and malformed packets, and
// queries, until the period ends or SIGTERM. It prints "flooding", then
// a JSON summary at the end.
func runFlooder(cfgText string) int {
	cfg, err := parseFloodConfig(cfgText)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var conns []*ipv4.PacketConn
	for _, s := range cfg.sources {
		c, err := net.ListenPacket("udp4", net.JoinHostPort(s, "5353"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			return 1
		}
		p := ipv4.NewPacketConn(c)
		_ = p.SetMulticastTTL(255)
		conns = append(conns, p)
	}
	label := sha256.Sum256([]byte("skein/v1"))
	subtype := "_" + hex.EncodeToString(label[:8]) + "._sub._skein._udp.local."
	fmt.Println("flooding")
	kinds := map[string]int{}
	sent, bytes := 0, 0
	start := time.Now()
	deadline := time.NewTimer(cfg.period)
	defer deadline.Stop()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, cfg.rate/100)
flood:
	for {
		select {
		case <-deadline.C:
			break flood
		case <-stop:
			break flood
		case <-tick.C:
		}
		for range perTick {
			from := sent % len(conns)
			kind, b := floodPacket(sent, subtype, cfg.victim, cfg.sources[from])
			if _, err := conns[from].WriteTo(b, nil, mdnsGroup); err == nil {
				kinds[kind]++
				bytes += len(b)
			}
			sent++
		}
	}
	out, _ := json.Marshal(map[string]any{"packets": sent, "bytes": bytes, "kinds": kinds, "seconds": time.Since(start).Seconds()})
	fmt.Println(string(out))
	return 0
}

// floodPacket is the i-th packet of the flood, sent from the address
// self, and its kind.
func floodPacket(i int, subtype, victim, self string) (string, []byte) {
	instance := func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) + "._skein._udp.local."
	}
	switch {
	case i%10 == 7:
		return "claims the victim's peer id", response(subtype, instance(), victim, "/ip4/"+subnet+".251/tcp/4001")
	case i%10 == 8:
		b := make([]byte, 20+i%9000)
		_, _ = rand.Read(b)
		return "garbage", b
	case i%10 == 9:
		// Oversized: as many addresses as fit in 9000 bytes.
		var addrs []string
		for j := 0; len(addrs) < 100; j++ {
			addrs = append(addrs, fmt.Sprintf("/ip4/%s.%d/tcp/%d", subnet, 200+j%50, 4000+j))
		}
		return "oversized", response(subtype, instance(), fakePeerID(), addrs...)
	case i%50 == 3:
		q := dnsmessage.NewBuilder(nil, dnsmessage.Header{})
		_ = q.StartQuestions()
		_ = q.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(subtype), Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET})
		b, _ := q.Finish()
		return "query", b
	case i%2 == 0:
		// At the sender's own address: what a real node announces.
		return "fake peer at the sender", response(subtype, instance(), fakePeerID(), "/ip4/"+self+"/tcp/4001")
	default:
		// At another host of the LAN: a reflection attempt.
		return "fake peer elsewhere", response(subtype, instance(), fakePeerID(), fmt.Sprintf("/ip4/%s.%d/tcp/4001", subnet, 200+i%50))
	}
}

func response(subtype, instance, id string, addrs ...string) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true, Authoritative: true})
	_ = b.StartAnswers()
	_ = b.PTRResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(subtype), Class: dnsmessage.ClassINET, TTL: 120},
		dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(instance)})
	txt := []string{"id=" + id}
	for _, a := range addrs {
		txt = append(txt, "a="+a)
	}
	_ = b.TXTResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(instance), Class: dnsmessage.ClassINET, TTL: 120},
		dnsmessage.TXTResource{TXT: txt})
	out, _ := b.Finish()
	return out
}

// fakePeerID is a valid libp2p peer id of a key nobody uses.
func fakePeerID() string {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		panic(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return id.String()
}
