package mdns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/skein-p2p/skein/sdk"
)

// Timing of the engine.
const (
	// tickEvery is how often the engine looks at its schedule.
	tickEvery = 250 * time.Millisecond
	// rescanEvery is how often interfaces are listed again.
	rescanEvery = 5 * time.Second
	// firstQueryGap is the gap after a search's first query; it doubles
	// up to the query interval (RFC 6762 section 5.2).
	firstQueryGap = time.Second
	// announcements is how many unsolicited responses an advertisement
	// starts with, one second apart (RFC 6762 section 8.3: at least two).
	announcements = 2
	// answerGap is the least time between two multicasts of one
	// advertisement on one interface (RFC 6762 section 6).
	answerGap = time.Second
	// subscriberBuffer is the buffer of each FindPeers channel; a reader
	// that falls behind misses peers until they are reported again.
	subscriberBuffer = 64
)

// engine is the running responder and querier: sockets, interfaces, the
// advertisements, the searches and the cache of peers found.
type engine struct {
	cfg    Config
	names  names
	logger *slog.Logger
	now    func() time.Time
	// out sends a packet out of an interface (tests replace it).
	out func(b []byte, ifc ifaceInfo)

	conns []*mconn
	kick  chan struct{}

	mu        sync.Mutex
	ifaces    map[int]ifaceInfo
	missing   []string // named interfaces not (yet) present
	adverts   map[string]*advert
	watches   map[string]*watch
	cache     map[cacheKey]*cached
	instances map[string]cacheKey // instance name -> cache key
	budget    int
	sources   map[netip.Addr]int
	window    time.Time
	stats     stats
	logged    stats // stats at the last summary
	closed    bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// advert is one advertisement: a peer under a namespace.
type advert struct {
	label    string // namespace label
	instance string // instance name
	self     sdk.PeerInfo
	// lastSent is when its records were last multicast, per interface.
	lastSent     map[int]time.Time
	announceLeft int
	nextAnnounce time.Time
}

// watch is one namespace being searched, with its subscribers.
type watch struct {
	subs map[chan sdk.PeerInfo]struct{}
	gap  time.Duration // current gap between queries
	next time.Time     // next query
}

type cacheKey struct{ label, id string }

// cached is a peer found, as last heard.
type cached struct {
	instance string
	addrs    []string
	addrKey  string
	src      netip.Addr // the sender it was last heard from
	iface    int
	ttl      uint32
	expires  time.Time
	lastEmit time.Time // zero: never reported
}

// stats count what the engine did and refused.
type stats struct {
	packetsIn, bytesIn, packetsOut, bytesOut uint64
	malformed                                uint64 // not a multicast DNS message
	foreign                                  uint64 // came in on an interface not ours
	offLink                                  uint64 // source not on the interface's subnets, or not port 5353
	selfEcho                                 uint64 // our own records, looped back
	spoofedSelf                              uint64 // someone else's records naming one of our peer ids
	addrsRefused                             uint64 // addresses not dialable from the interface, or malformed
	overBudget                               uint64 // reports held back by max_peers_per_interval
	overSource                               uint64 // new peers refused by max_peers_per_source
	cacheFull                                uint64 // new peers refused by max_cached_peers
	slowReader                               uint64 // reports a FindPeers reader did not take in time
	reported                                 uint64 // peers reported to the node
	sendErrors                               uint64
}

func newEngine(cfg Config, logger *slog.Logger) *engine {
	ctx, cancel := context.WithCancel(context.Background())
	e := &engine{
		cfg:       cfg,
		names:     newNames(cfg.Service),
		logger:    logger,
		now:       time.Now,
		kick:      make(chan struct{}, 1),
		ifaces:    map[int]ifaceInfo{},
		adverts:   map[string]*advert{},
		watches:   map[string]*watch{},
		cache:     map[cacheKey]*cached{},
		instances: map[string]cacheKey{},
		budget:    cfg.MaxPeersPerInterval,
		sources:   map[netip.Addr]int{},
		ctx:       ctx,
		cancel:    cancel,
	}
	e.window = e.now()
	e.out = e.sendOut
	return e
}

// start opens the sockets (IPv4 and IPv6; one failing is logged, both an
// error), joins the interfaces and starts the loops.
func (e *engine) start(ctx context.Context) error {
	var errs []error
	for _, v6 := range []bool{false, true} {
		c, err := listenMDNS(ctx, v6)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.conns = append(e.conns, c)
	}
	if len(e.conns) == 0 {
		return fmt.Errorf("mdns: no multicast socket: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		e.logger.Warn("one address family unavailable", "err", err)
	}
	e.rescan()
	e.mu.Lock()
	names := make([]string, 0, len(e.ifaces))
	for _, ifc := range e.ifaces {
		names = append(names, ifc.name)
	}
	missing := slices.Clone(e.missing)
	e.mu.Unlock()
	slices.Sort(names)
	if len(missing) > 0 {
		e.logger.Warn("configured interfaces not present or down; joined when they come up", "interfaces", missing)
	}
	if len(names) == 0 {
		e.logger.Warn("no usable interface yet (up, multicast, with an address); watching for one")
	}
	e.logger.Info("mdns started", "service", e.names.service, "interfaces", names, "query_interval", e.cfg.QueryInterval)
	for _, c := range e.conns {
		e.wg.Add(1)
		go e.readLoop(c)
	}
	e.wg.Add(1)
	go e.loop()
	return nil
}

// stop says goodbye for every advertisement, closes the sockets and
// waits for the loops.
func (e *engine) stop() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	var bye []*advert
	for _, a := range e.adverts {
		bye = append(bye, a)
	}
	ifaces := e.ifaceList()
	e.mu.Unlock()
	for _, a := range bye {
		e.goodbye(a, ifaces)
	}
	e.cancel()
	for _, c := range e.conns {
		_ = c.close()
	}
	e.wg.Wait()
	e.mu.Lock()
	for label, w := range e.watches {
		for ch := range w.subs {
			close(ch)
		}
		delete(e.watches, label)
	}
	e.mu.Unlock()
}

// ifaceList returns the interfaces in index order. Call with e.mu held.
func (e *engine) ifaceList() []ifaceInfo {
	out := make([]ifaceInfo, 0, len(e.ifaces))
	for _, ifc := range e.ifaces {
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(a, b ifaceInfo) int { return a.index - b.index })
	return out
}

// sendOut multicasts b out of the interface on every socket whose family
// the interface has an address of.
func (e *engine) sendOut(b []byte, ifc ifaceInfo) {
	for _, c := range e.conns {
		if (c.v6 && !ifc.v6()) || (!c.v6 && !ifc.v4()) {
			continue
		}
		err := c.send(b, ifc.index)
		e.mu.Lock()
		if err != nil {
			e.stats.sendErrors++
		} else {
			e.stats.packetsOut++
			e.stats.bytesOut += uint64(len(b))
		}
		e.mu.Unlock()
		if err != nil && e.ctx.Err() == nil {
			e.logger.Debug("send failed", "interface", ifc.name, "err", err)
		}
	}
}

func (e *engine) readLoop(c *mconn) {
	defer e.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		n, index, src, err := c.read(buf)
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			e.logger.Debug("read failed", "err", err)
			// A transient error (an interface going away); do not spin.
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		e.handle(buf[:n], index, src)
	}
}

// wake makes the loop look at its schedule now.
func (e *engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *engine) loop() {
	defer e.wg.Done()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	lastScan := e.now()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
		if now := e.now(); now.Sub(lastScan) >= rescanEvery {
			lastScan = now
			e.rescan()
		}
		e.tick()
	}
}

// outgoing is a packet to send out of an interface.
type outgoing struct {
	b   []byte
	ifc ifaceInfo
}

// tick runs what is due: the budget window, expiry, reports of cached
// peers, queries and announcements.
func (e *engine) tick() {
	now := e.now()
	var out []outgoing
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if now.Sub(e.window) >= e.cfg.QueryInterval {
		e.window = now
		e.budget = e.cfg.MaxPeersPerInterval
		clear(e.sources)
		e.summaryLocked()
	}
	for k, c := range e.cache {
		if now.After(c.expires) {
			e.forgetLocked(k)
		}
	}
	e.reportDueLocked(now)
	ifaces := e.ifaceList()
	for label, w := range e.watches {
		if now.Before(w.next) {
			continue
		}
		w.gap = min(w.gap*2, e.cfg.QueryInterval)
		w.next = now.Add(jitter(w.gap))
		b, err := buildQuery([]string{e.names.subtype(label)}, e.knownLocked(label, now))
		if err != nil {
			e.logger.Error("build query", "err", err)
			continue
		}
		for _, ifc := range ifaces {
			out = append(out, outgoing{b, ifc})
		}
	}
	for _, a := range e.adverts {
		if a.announceLeft == 0 || now.Before(a.nextAnnounce) {
			continue
		}
		a.announceLeft--
		a.nextAnnounce = now.Add(time.Second)
		for _, ifc := range ifaces {
			if b := e.responseLocked([]*advert{a}, ifc, recordTTL, now); b != nil {
				out = append(out, outgoing{b, ifc})
			}
		}
	}
	e.mu.Unlock()
	for _, o := range out {
		e.out(o.b, o.ifc)
	}
}

// jitter returns d shortened by up to a tenth, at random, so that nodes
// started together do not query in step.
func jitter(d time.Duration) time.Duration {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return d - time.Duration(uint64(d/10)*(uint64(b[0])|uint64(b[1])<<8)/65535)
}

// knownLocked is the known-answer list of a query for label: the cached
// peers whose records have more than half their TTL left, and our own
// advertisements (so that we do not answer our own query).
func (e *engine) knownLocked(label string, now time.Time) []record {
	subtype := e.names.subtype(label)
	var known []record
	for _, a := range e.adverts {
		if a.label == label {
			known = append(known, record{name: subtype, typ: dnsmessage.TypePTR, ttl: recordTTL, target: a.instance})
		}
	}
	for k, c := range e.cache {
		left := c.expires.Sub(now)
		if k.label == label && left > time.Duration(c.ttl)*time.Second/2 {
			known = append(known, record{name: subtype, typ: dnsmessage.TypePTR, ttl: uint32(left / time.Second), target: c.instance})
		}
	}
	return known
}

// responseLocked builds a response holding the records of the adverts
// that have something to announce on ifc (nil if none does), and marks
// them sent.
func (e *engine) responseLocked(ads []*advert, ifc ifaceInfo, ttl uint32, now time.Time) []byte {
	var recs []record
	size := 12
	for _, a := range ads {
		addrs := ifc.announceable(a.self.Addrs)
		if len(addrs) == 0 && len(a.self.Addrs) > 0 {
			continue // nothing of it is reachable from this link
		}
		ptr := record{name: e.names.subtype(a.label), typ: dnsmessage.TypePTR, ttl: ttl, target: a.instance}
		txtBudget := maxPacket - size - recordSize(ptr) - len(a.instance) - 12
		txt := record{name: a.instance, typ: dnsmessage.TypeTXT, ttl: ttl, txt: txtOf(a.self.ID, addrs, txtBudget)}
		if size+recordSize(ptr)+recordSize(txt) > maxPacket {
			continue
		}
		size += recordSize(ptr) + recordSize(txt)
		recs = append(recs, ptr, txt)
		a.lastSent[ifc.index] = now
	}
	if len(recs) == 0 {
		return nil
	}
	b, err := buildResponse(recs)
	if err != nil {
		e.logger.Error("build response", "err", err)
		return nil
	}
	return b
}

// goodbye sends the advert's records with TTL 0 (RFC 6762 section 10.1).
func (e *engine) goodbye(a *advert, ifaces []ifaceInfo) {
	for _, ifc := range ifaces {
		e.mu.Lock()
		b := e.responseLocked([]*advert{a}, ifc, 0, e.now())
		e.mu.Unlock()
		if b != nil {
			e.out(b, ifc)
		}
	}
}

// handle looks at one received packet.
func (e *engine) handle(b []byte, index int, src netip.AddrPort) {
	e.mu.Lock()
	e.stats.packetsIn++
	e.stats.bytesIn += uint64(len(b))
	ifc, ours := e.ifaces[index]
	e.mu.Unlock()
	if !ours {
		e.count(func(s *stats) { s.foreign++ })
		return
	}
	// RFC 6762 section 11: only on-link senders, and only port 5353
	// (we answer no legacy unicast queries).
	if src.Port() != mdnsPort || !ifc.onLink(src.Addr()) {
		e.count(func(s *stats) { s.offLink++ })
		return
	}
	pk, err := parsePacket(b)
	if err != nil {
		e.count(func(s *stats) { s.malformed++ })
		return
	}
	if pk.response {
		e.handleResponse(pk, ifc, src.Addr().Unmap())
		return
	}
	e.handleQuery(pk, ifc)
}

func (e *engine) count(f func(*stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// handleQuery answers the questions for namespaces we advertise in, on
// the interface the query came in on, unless the query already knows the
// answer or we answered on that interface within the last second.
func (e *engine) handleQuery(pk packet, ifc ifaceInfo) {
	var labels []string
	for _, q := range pk.questions {
		if q.typ != dnsmessage.TypePTR && q.typ != dnsmessage.TypeALL {
			continue
		}
		if l := e.names.labelOfSubtype(q.name); l != "" && !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		return
	}
	now := e.now()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	var due []*advert
	for _, a := range e.adverts {
		if !slices.Contains(labels, a.label) || now.Sub(a.lastSent[ifc.index]) < answerGap || knowsAnswer(pk, e.names.subtype(a.label), a.instance) {
			continue
		}
		due = append(due, a)
	}
	slices.SortFunc(due, func(x, y *advert) int { return strings.Compare(x.instance, y.instance) })
	b := e.responseLocked(due, ifc, recordTTL, now)
	e.mu.Unlock()
	if b != nil {
		e.out(b, ifc)
	}
}

// knowsAnswer reports whether a query lists our PTR as a known answer
// with at least half its TTL left (RFC 6762 section 7.1).
func knowsAnswer(pk packet, subtype, instance string) bool {
	return slices.ContainsFunc(pk.records, func(r record) bool {
		return r.typ == dnsmessage.TypePTR && r.name == subtype && r.target == instance && r.ttl >= recordTTL/2
	})
}

// handleResponse caches and reports the peers a response names in the
// namespaces being searched.
func (e *engine) handleResponse(pk packet, ifc ifaceInfo, src netip.Addr) {
	anns := e.names.announcements(pk)
	if len(anns) == 0 {
		return
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	for _, a := range anns {
		if _, ok := e.watches[a.label]; !ok {
			continue // not searched: not kept
		}
		if _, own := e.adverts[a.instance]; own {
			e.stats.selfEcho++
			continue
		}
		if a.ttl == 0 {
			if k, ok := e.instances[a.instance]; ok {
				e.forgetLocked(k)
			}
			continue
		}
		if e.advertisesLocked(a.id) {
			e.stats.spoofedSelf++
			continue
		}
		addrs, refused := ifc.acceptable(a.addrs, src)
		e.stats.addrsRefused += uint64(refused + a.badAddrs)
		if len(addrs) == 0 && len(a.addrs)+a.badAddrs > 0 {
			continue // nothing we may dial
		}
		key := cacheKey{a.label, a.id}
		c, known := e.cache[key]
		if known && c.instance == a.instance {
			// A packet of one IP family vouches for that family's
			// addresses only: keep the other family's, heard before.
			for _, old := range c.addrs {
				if ip, _ := addrIP(old); ip.Is4() != src.Is4() {
					addrs = append(addrs, old)
				}
			}
		}
		slices.Sort(addrs)
		addrs = slices.Compact(addrs)
		if !known {
			if len(e.cache) >= e.cfg.MaxCachedPeers {
				e.stats.cacheFull++
				continue
			}
			if e.sources[src] >= e.cfg.MaxPeersPerSource {
				e.stats.overSource++
				continue
			}
			e.sources[src]++
			c = &cached{}
			e.cache[key] = c
		}
		addrKey := strings.Join(addrs, " ")
		changed := !known || c.instance != a.instance || c.addrKey != addrKey
		if c.instance != a.instance {
			delete(e.instances, c.instance)
			e.instances[a.instance] = key
		}
		ttl := min(a.ttl, recordTTL)
		c.instance, c.addrs, c.addrKey, c.src, c.iface, c.ttl = a.instance, addrs, addrKey, src, ifc.index, ttl
		c.expires = now.Add(time.Duration(ttl) * time.Second)
		if changed {
			c.lastEmit = time.Time{}
		}
		if c.lastEmit.IsZero() {
			e.reportLocked(key, c, now)
		}
	}
}

// advertisesLocked reports whether id is one of the peers we advertise.
func (e *engine) advertisesLocked(id string) bool {
	for _, a := range e.adverts {
		if a.self.ID == id {
			return true
		}
	}
	return false
}

// reportDueLocked reports the cached peers not reported for a query
// interval (or never: held back by the budget), as the budget allows,
// fairly: first those whose sender announced the fewest peers, so that a
// sender flooding fake peers does not starve a real one.
func (e *engine) reportDueLocked(now time.Time) {
	if e.budget <= 0 {
		return
	}
	type due struct {
		k cacheKey
		c *cached
	}
	var list []due
	perSender := map[netip.Addr]int{}
	for k, c := range e.cache {
		perSender[c.src]++
		if now.Sub(c.lastEmit) >= e.cfg.QueryInterval {
			list = append(list, due{k, c})
		}
	}
	slices.SortFunc(list, func(x, y due) int {
		if d := perSender[x.c.src] - perSender[y.c.src]; d != 0 {
			return d
		}
		return x.c.lastEmit.Compare(y.c.lastEmit)
	})
	for _, d := range list {
		if e.budget <= 0 {
			return
		}
		e.reportLocked(d.k, d.c, now)
	}
}

// reportLocked hands a cached peer to the namespace's subscribers if the
// budget allows; otherwise it stays due and is tried again at a tick.
func (e *engine) reportLocked(k cacheKey, c *cached, now time.Time) {
	w, ok := e.watches[k.label]
	if !ok {
		return
	}
	if e.budget <= 0 {
		e.stats.overBudget++
		return
	}
	e.budget--
	c.lastEmit = now
	e.stats.reported++
	info := sdk.PeerInfo{ID: k.id, Addrs: slices.Clone(c.addrs)}
	for ch := range w.subs {
		select {
		case ch <- info:
		default:
			e.stats.slowReader++
		}
	}
}

// forgetLocked drops a cached peer.
func (e *engine) forgetLocked(k cacheKey) {
	if c, ok := e.cache[k]; ok {
		delete(e.instances, c.instance)
		delete(e.cache, k)
	}
}

// summaryLocked logs what was refused since the last summary, if
// anything was: once per query interval at most, however hard the LAN
// pushes.
func (e *engine) summaryLocked() {
	s, l := e.stats, e.logged
	e.logged = s
	refused := []any{}
	for _, f := range []struct {
		name     string
		now, was uint64
	}{
		{"malformed", s.malformed, l.malformed},
		{"off_link", s.offLink, l.offLink},
		{"spoofed_self", s.spoofedSelf, l.spoofedSelf},
		{"addrs_refused", s.addrsRefused, l.addrsRefused},
		{"over_budget", s.overBudget, l.overBudget},
		{"over_source", s.overSource, l.overSource},
		{"cache_full", s.cacheFull, l.cacheFull},
		{"slow_reader", s.slowReader, l.slowReader},
	} {
		if f.now > f.was {
			refused = append(refused, f.name, f.now-f.was)
		}
	}
	if len(refused) == 0 {
		return
	}
	level := slog.LevelDebug
	if s.spoofedSelf > l.spoofedSelf || s.overBudget > l.overBudget || s.overSource > l.overSource || s.cacheFull > l.cacheFull {
		level = slog.LevelWarn
	}
	e.logger.Log(context.Background(), level, "refused or held back on the LAN since the last summary",
		append(refused, "packets_in", s.packetsIn-l.packetsIn, "reported", s.reported-l.reported, "cached_peers", len(e.cache))...)
}

// rescan lists the interfaces again: joins new ones (and announces the
// advertisements there), leaves those gone, and takes address changes.
func (e *engine) rescan() {
	list, missing, err := listInterfaces(e.cfg.Interfaces)
	if err != nil {
		e.logger.Warn("list interfaces", "err", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.missing = missing
	seen := map[int]bool{}
	for _, ifc := range list {
		seen[ifc.index] = true
		if _, ok := e.ifaces[ifc.index]; !ok {
			joined := false
			for _, c := range e.conns {
				if (c.v6 && !ifc.v6()) || (!c.v6 && !ifc.v4()) {
					continue
				}
				if err := c.join(ifc.index); err != nil {
					e.logger.Debug("join multicast group", "interface", ifc.name, "v6", c.v6, "err", err)
					continue
				}
				joined = true
			}
			if !joined {
				continue
			}
			e.logger.Info("interface joined", "interface", ifc.name)
			for _, a := range e.adverts {
				a.announceLeft = announcements
			}
		}
		e.ifaces[ifc.index] = ifc
	}
	for index, ifc := range e.ifaces {
		if !seen[index] {
			for _, c := range e.conns {
				c.leave(index)
			}
			delete(e.ifaces, index)
			e.logger.Info("interface left", "interface", ifc.name)
		}
	}
}

// advertise starts announcing self under namespace until ctx ends.
func (e *engine) advertise(ctx context.Context, namespace string, self sdk.PeerInfo) error {
	var rnd [instanceLabelLen / 2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("mdns advertise: %w", err)
	}
	a := &advert{
		label:        nsLabel(namespace),
		instance:     e.names.instance(hex.EncodeToString(rnd[:])),
		self:         sdk.PeerInfo{ID: self.ID, Addrs: slices.Clone(self.Addrs)},
		lastSent:     map[int]time.Time{},
		announceLeft: announcements,
		nextAnnounce: e.now(),
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("mdns advertise: %w: stopped", sdk.ErrLifecycle)
	}
	e.adverts[a.instance] = a
	reachable := len(self.Addrs) == 0
	for _, ifc := range e.ifaces {
		reachable = reachable || len(ifc.announceable(self.Addrs)) > 0
	}
	e.wg.Add(1) // under e.mu: stop's Wait comes after closed is set
	e.mu.Unlock()
	if !reachable {
		e.logger.Warn("none of the advertised addresses is on an interface in use: announced nowhere until one is",
			"addrs", len(self.Addrs), "interfaces", e.cfg.Interfaces)
	}
	e.wake()
	go func() {
		defer e.wg.Done()
		select {
		case <-ctx.Done():
		case <-e.ctx.Done():
			return // stop says goodbye
		}
		e.mu.Lock()
		delete(e.adverts, a.instance)
		closed := e.closed
		ifaces := e.ifaceList()
		e.mu.Unlock()
		if !closed {
			e.goodbye(a, ifaces)
		}
	}()
	return nil
}

// findPeers starts a search for namespace; the channel closes when ctx
// ends or the engine stops.
func (e *engine) findPeers(ctx context.Context, namespace string) (<-chan sdk.PeerInfo, error) {
	label := nsLabel(namespace)
	ch := make(chan sdk.PeerInfo, subscriberBuffer)
	now := e.now()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, fmt.Errorf("mdns find peers: %w: stopped", sdk.ErrLifecycle)
	}
	w, ok := e.watches[label]
	if !ok {
		w = &watch{subs: map[chan sdk.PeerInfo]struct{}{}, gap: firstQueryGap / 2}
		e.watches[label] = w
	}
	w.subs[ch] = struct{}{}
	// A new search asks at once (and then 1 s, 2 s ... later), and gets
	// what is cached right away.
	w.next, w.gap = now, firstQueryGap/2
	for k, c := range e.cache {
		if k.label == label && !c.lastEmit.IsZero() {
			select {
			case ch <- sdk.PeerInfo{ID: k.id, Addrs: slices.Clone(c.addrs)}:
			default:
			}
		}
	}
	e.wg.Add(1) // under e.mu: stop's Wait comes after closed is set
	e.mu.Unlock()
	e.wake()
	go func() {
		defer e.wg.Done()
		select {
		case <-ctx.Done():
		case <-e.ctx.Done():
			return // stop closes the channels
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if w, ok := e.watches[label]; ok {
			if _, ok := w.subs[ch]; ok {
				delete(w.subs, ch)
				close(ch)
			}
			if len(w.subs) == 0 {
				delete(e.watches, label)
				for k := range e.cache {
					if k.label == label {
						e.forgetLocked(k)
					}
				}
			}
		}
	}()
	return ch, nil
}

// status reports the engine's figures.
func (e *engine) status() sdk.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, ifc := range e.ifaceList() {
		names = append(names, ifc.name)
	}
	s := e.stats
	d := map[string]string{
		"interfaces":     strings.Join(names, ","),
		"advertisements": fmt.Sprint(len(e.adverts)),
		"searches":       fmt.Sprint(len(e.watches)),
		"cached_peers":   fmt.Sprint(len(e.cache)),
		"packets_in":     fmt.Sprint(s.packetsIn),
		"bytes_in":       fmt.Sprint(s.bytesIn),
		"packets_out":    fmt.Sprint(s.packetsOut),
		"bytes_out":      fmt.Sprint(s.bytesOut),
		"reported":       fmt.Sprint(s.reported),
		"malformed":      fmt.Sprint(s.malformed),
		"off_link":       fmt.Sprint(s.offLink),
		"foreign_iface":  fmt.Sprint(s.foreign),
		"spoofed_self":   fmt.Sprint(s.spoofedSelf),
		"addrs_refused":  fmt.Sprint(s.addrsRefused),
		"over_budget":    fmt.Sprint(s.overBudget),
		"over_source":    fmt.Sprint(s.overSource),
		"cache_full":     fmt.Sprint(s.cacheFull),
		"slow_reader":    fmt.Sprint(s.slowReader),
		"send_errors":    fmt.Sprint(s.sendErrors),
	}
	msg := fmt.Sprintf("%d interfaces, %d peers cached", len(names), len(e.cache))
	if len(e.missing) > 0 {
		msg += "; missing interfaces: " + strings.Join(e.missing, ",")
	}
	return sdk.Status{Healthy: len(names) > 0, Message: msg, Details: d}
}
