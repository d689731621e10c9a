package replication

import (
	"context"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
)

// entryGetter is what a Log may also have: reading one of its entries
// (*log.Log and the group's logs do). Progress estimates need it.
type entryGetter interface {
	Get(ctx context.Context, c cid.Cid) (*log.Entry, error)
}

// progressLogEvery spaces a long catch-up's progress lines in the log.
const progressLogEvery = 5 * time.Second

// progress is what one log's catch-up has done and has left: the entry
// blocks joins fetched (and their bytes), and an estimate of what is
// missing from the Lamport clocks: a missing head of time T, with local
// heads of time at most L, stands for about T-L entries (exactly that
// many when one writer wrote them; more when several wrote at once).
type progress struct {
	mu sync.Mutex
	// fetched and fetchedBytes count the entry blocks joins fetched
	// (inline, in bulk or by the block getter).
	fetched, fetchedBytes uint64
	// localTop is the greatest Lamport time in the local log, once
	// localKnown (read from the heads when first needed).
	localTop   uint64
	localKnown bool
	// remoteTop is the greatest Lamport time of a head known missing.
	remoteTop uint64
	// catchup: a bulk join under way (zero start: none).
	start                 time.Time
	startFetched, startBy uint64
	lastLog               time.Time
}

// Progress is one log's catch-up, in LogStatus.
type Progress struct {
	// Fetched and FetchedBytes count the entry blocks joins fetched since
	// the replicator started.
	Fetched, FetchedBytes uint64
	// MissingEntries estimates the entries still missing (see progress);
	// 0: none, or not known yet (no missing head's clock seen).
	MissingEntries uint64
}

func (rep *replica) localTopLocked(ctx context.Context) (uint64, bool) {
	p := &rep.prog
	if p.localKnown {
		return p.localTop, true
	}
	eg, ok := rep.log.(entryGetter)
	if !ok {
		return 0, false
	}
	top := uint64(0)
	for _, h := range rep.log.Heads() {
		e, err := eg.Get(ctx, h)
		if err != nil {
			return 0, false
		}
		top = max(top, e.Time)
	}
	p.localTop, p.localKnown = max(p.localTop, top), true
	return p.localTop, true
}

// sawEntry records an entry that entered the log.
func (rep *replica) sawEntry(e *log.Entry) {
	p := &rep.prog
	p.mu.Lock()
	p.localTop = max(p.localTop, e.Time)
	p.mu.Unlock()
}

// sawRemote records the clock of a block of a missing entry (a head
// announced inline, or a block a join fetched).
func (rep *replica) sawRemote(data []byte) {
	e, err := log.DecodeEntry(data)
	if err != nil {
		return
	}
	p := &rep.prog
	p.mu.Lock()
	p.remoteTop = max(p.remoteTop, e.Time)
	p.mu.Unlock()
}

// fetchedBlock counts a block a join fetched, and logs a long catch-up's
// progress now and then.
func (rep *replica) fetchedBlock(data []byte) {
	p := &rep.prog
	p.mu.Lock()
	p.fetched++
	p.fetchedBytes += uint64(len(data))
	p.mu.Unlock()
	rep.sawRemote(data)
	p.mu.Lock()
	logNow := !p.start.IsZero() && time.Since(p.lastLog) >= progressLogEvery
	if logNow {
		p.lastLog = time.Now()
	}
	p.mu.Unlock()
	if logNow {
		st := rep.progressStatus()
		rate, eta := rep.rate(st)
		rep.r.logger.Info("catch-up progress", "log", rep.id, "channel", rep.channel,
			"fetched", st.Fetched-p.startFetched, "bytes", st.FetchedBytes-p.startBy,
			"missing_about", st.MissingEntries, "entries_per_s", rate, "eta", eta)
	}
}

// rate is the current catch-up's entries per second and the time left at
// that rate ("" when unknown).
func (rep *replica) rate(st Progress) (float64, string) {
	p := &rep.prog
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		return 0, ""
	}
	el := time.Since(p.start).Seconds()
	if el <= 0 || st.Fetched <= p.startFetched {
		return 0, ""
	}
	r := float64(st.Fetched-p.startFetched) / el
	eta := ""
	if st.MissingEntries > 0 {
		eta = (time.Duration(float64(st.MissingEntries)/r*float64(time.Second)) + time.Second/2).Round(time.Second).String()
	}
	return float64(int(r*10)) / 10, eta
}

// catchupStarted logs the start of a bulk join (heads from a head
// exchange, a digest or a retry) that has something to fetch.
func (rep *replica) catchupStarted(peer string, heads int) {
	p := &rep.prog
	p.mu.Lock()
	if !p.start.IsZero() {
		p.mu.Unlock()
		return // another peer's join runs: one catch-up
	}
	p.start, p.lastLog = time.Now(), time.Now()
	p.startFetched, p.startBy = p.fetched, p.fetchedBytes
	p.mu.Unlock()
	st := rep.progressStatus()
	rep.r.logger.Info("catch-up started", "log", rep.id, "channel", rep.channel, "peer", peer,
		"heads_missing", heads, "missing_about", st.MissingEntries)
}

// catchupFinished logs the end of the catch-up once no join of the log
// runs.
func (rep *replica) catchupFinished(peer string, added int) {
	rep.mu.Lock()
	busy := len(rep.busy)
	rep.mu.Unlock()
	p := &rep.prog
	p.mu.Lock()
	if p.start.IsZero() || busy > 1 { // busy counts this join still
		p.mu.Unlock()
		return
	}
	took := time.Since(p.start)
	n, b := p.fetched-p.startFetched, p.fetchedBytes-p.startBy
	p.start = time.Time{}
	p.mu.Unlock()
	st := rep.progressStatus()
	rep.r.logger.Info("catch-up finished", "log", rep.id, "channel", rep.channel, "peer", peer,
		"fetched", n, "bytes", b, "added", added, "took", took.Round(time.Millisecond).String(),
		"missing_about", st.MissingEntries)
}

// progressStatus returns the log's progress figures.
func (rep *replica) progressStatus() Progress {
	p := &rep.prog
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Progress{Fetched: p.fetched, FetchedBytes: p.fetchedBytes}
	if top, ok := rep.localTopLocked(rep.ctx); ok && p.remoteTop > top {
		out.MissingEntries = p.remoteTop - top
	}
	return out
}

// nothingMissing forgets the clock of missing heads once none is: a head
// refused for good must not leave an estimate behind.
func (rep *replica) nothingMissing() {
	p := &rep.prog
	p.mu.Lock()
	p.remoteTop = 0
	p.mu.Unlock()
}
