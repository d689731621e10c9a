package replication

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/sdk"
)

// Rendezvous: the peers replicating a topic find each other through the
// network's content routing (the DHT of plugins/ipfs). Each provides a
// rendezvous CID derived from the topic and the current day, and looks up
// the other providers of it, then connects to them. The CID changes every
// RendezvousPeriod, so an observer of the DHT links the peers that share a
// topic for one period at a time, and learns nothing of the topic itself.

// RendezvousPeriod is how long one rendezvous CID of a topic is used.
const RendezvousPeriod = 24 * time.Hour

// RendezvousInfo prefixes what a rendezvous CID hashes.
const RendezvousInfo = "skein/v1/rendezvous"

// rendezvousOverlap: this close to a period's edge, the neighbouring
// period's CID is used too (provided before the change, looked up after),
// so clocks a little apart and providers announced just before midnight
// still meet.
const rendezvousOverlap = time.Hour

// rendezvousMinRetry is the first retry of a round that found nobody or
// failed; it doubles up to the rendezvous interval.
const rendezvousMinRetry = 5 * time.Second

// rendezvousLookup bounds one provider lookup; rendezvousDial one dial.
const (
	rendezvousLookup = time.Minute
	rendezvousDial   = 30 * time.Second
	// rendezvousMaxPeers bounds the providers taken from one lookup;
	// rendezvousParallelDials the dials of them at once.
	rendezvousMaxPeers      = 20
	rendezvousParallelDials = 4
	// rendezvousParallelRounds bounds the rounds (of all topics) at once.
	rendezvousParallelRounds = 8
)

// RendezvousCID returns the rendezvous CID of topic for the period holding
// t: CIDv1, raw codec, sha2-256 of
// "skein/v1/rendezvous" || 0x00 || topic || 0x00 || decimal(unix(t) / 86400).
func RendezvousCID(topic string, t time.Time) cid.Cid {
	period := t.Unix() / int64(RendezvousPeriod/time.Second)
	h := sha256.New()
	h.Write([]byte(RendezvousInfo))
	h.Write([]byte{0})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(period, 10)))
	m, _ := mh.Encode(h.Sum(nil), mh.SHA2_256)
	return cid.NewCidV1(cid.Raw, m)
}

// rendezvousCIDs returns the CIDs to provide and to look up at now.
func rendezvousCIDs(topic string, now time.Time) (provide, lookup []cid.Cid) {
	cur := RendezvousCID(topic, now)
	provide, lookup = []cid.Cid{cur}, []cid.Cid{cur}
	if next := RendezvousCID(topic, now.Add(rendezvousOverlap)); !next.Equals(cur) {
		provide = append(provide, next)
	}
	if prev := RendezvousCID(topic, now.Add(-rendezvousOverlap)); !prev.Equals(cur) {
		lookup = append(lookup, prev)
	}
	return provide, lookup
}

// rendezvous runs the rounds of one topic until ctx ends: at once, then
// every rendezvous interval; sooner (from rendezvousMinRetry, doubling)
// after a round that failed or found nobody new while no peer replicating
// the topic is connected.
func (r *Replicator) rendezvous(ctx context.Context, topic string) {
	retry := rendezvousMinRetry
	for {
		select {
		case r.rendezvousSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		found, err := r.rendezvousRound(ctx, topic)
		<-r.rendezvousSlots
		if ctx.Err() != nil {
			return
		}
		wait := r.opts.rendezvous
		if err != nil || (found == 0 && !r.topicPeerConnected(ctx, topic)) {
			wait = min(retry, wait)
			retry = min(2*retry, r.opts.rendezvous)
		} else {
			retry = rendezvousMinRetry
		}
		if err != nil {
			r.logger.Debug("rendezvous", "topic", shortTopic(topic), "err", err, "retry_in", wait)
		}
		// Up to a fifth more, so that the rounds of many topics started
		// together spread out.
		wait += rand.N(wait/5 + 1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// rendezvousRound looks up the topic's rendezvous providers, connects to
// the new ones, and provides the rendezvous itself. It returns how many
// peers it connected to.
func (r *Replicator) rendezvousRound(ctx context.Context, topic string) (int, error) {
	provide, lookup := rendezvousCIDs(topic, time.Now())
	connected := r.livePeers(ctx)
	connected[r.self] = true
	var found atomic.Int64
	var errs []error
	for _, c := range lookup {
		lctx, cancel := context.WithTimeout(ctx, rendezvousLookup)
		ch, err := r.net.FindProviders(lctx, c.Bytes())
		if err != nil {
			cancel()
			errs = append(errs, err)
			continue
		}
		// Dials run beside the lookup, a few at once: a provider that
		// does not answer costs its dial timeout, not the others'.
		var wg sync.WaitGroup
		sem := make(chan struct{}, rendezvousParallelDials)
		n := 0
		for info := range ch {
			if n++; n > rendezvousMaxPeers {
				break
			}
			if connected[info.ID] || r.isBlocked(info.ID) {
				continue
			}
			connected[info.ID] = true
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if r.connectFound(ctx, info) {
					found.Add(1)
				}
			})
		}
		wg.Wait()
		cancel()
	}
	for _, c := range provide {
		pctx, cancel := context.WithTimeout(ctx, rendezvousLookup)
		if err := r.net.Provide(pctx, c.Bytes()); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	r.mu.Lock()
	if ts := r.topics[topic]; ts != nil {
		ts.rendezvous.Found += uint64(found.Load())
		ts.rendezvous.Last = time.Now()
		ts.rendezvous.Error = ""
		if err := errors.Join(errs...); err != nil {
			ts.rendezvous.Error = err.Error()
		}
	}
	r.mu.Unlock()
	return int(found.Load()), errors.Join(errs...)
}

// connectFound dials a peer a rendezvous lookup named.
func (r *Replicator) connectFound(ctx context.Context, info sdk.PeerInfo) bool {
	dctx, cancel := context.WithTimeout(ctx, rendezvousDial)
	defer cancel()
	if err := r.net.Connect(dctx, info); err != nil {
		r.logger.Debug("rendezvous: dial", "peer", info.ID, "err", err)
		return false
	}
	r.logger.Info("rendezvous: connected to a peer of a replicated topic", "peer", info.ID)
	if f := r.opts.rendezvousHook; f != nil {
		f(info.ID)
	}
	return true
}

// topicPeerConnected reports whether a connected peer has named heads of
// a log of topic (it replicates the topic too).
func (r *Replicator) topicPeerConnected(ctx context.Context, topic string) bool {
	live := r.livePeers(ctx)
	for _, rep := range r.replicas() {
		if rep.topic != topic {
			continue
		}
		rep.mu.Lock()
		for p := range rep.remote {
			if live[p] {
				rep.mu.Unlock()
				return true
			}
		}
		rep.mu.Unlock()
	}
	return false
}

func shortTopic(topic string) string {
	if len(topic) > 12 {
		return topic[:12]
	}
	return topic
}
