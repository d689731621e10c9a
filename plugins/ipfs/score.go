package ipfs

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/skein-p2p/skein/sdk"
)

var _ sdk.PeerScorer = (*Network)(nil)

// Peer scoring. A peer's gossipsub score is the sum of
//
//   - its application score (gossipsub's P5, weight 1): what the node
//     reported with ScorePeer, plus the network's own penalties (a pubsub
//     message the peer had no business sending, see gate.go), bounded to
//     [appScoreFloor, appScoreCeiling] and halved every
//     ScoreConfig.AppHalfLife;
//   - per topic, invalidMessageWeight times the square of the decaying
//     count of messages it handed over that a validator rejected
//     (gossipsub's P4: one such message costs 10, two 40, three 90).
//
// Every other component (mesh time, deliveries, IP colocation, behaviour)
// is off, so an honest peer's score is 0 whatever its address (tests put
// every peer on 127.0.0.1). What a score costs is in ScoreConfig: below 0
// the peer is pruned from meshes, then loses gossip, then this node's
// publications, then is graylisted, and below DisconnectThreshold it is
// cut off with BlockPeer for BlockFor.
const (
	// appScoreFloor and appScoreCeiling bound the application score: a
	// peer cannot bank credit to outlast a flood of its own, and a
	// penalty wears off within a bounded time.
	appScoreFloor   = -1000
	appScoreCeiling = 10
	// appScoreMaxPeers bounds the peers the application score remembers;
	// the one whose score is nearest 0 is forgotten first.
	appScoreMaxPeers = 4096
	// invalidMessageWeight and invalidMessageDecay: the per-message
	// penalty and how its count decays every scoreDecayInterval (0.99 a
	// second: halved in about 70 s).
	invalidMessageWeight = -10
	invalidMessageDecay  = 0.99
	scoreDecayInterval   = time.Second
	// scoreRetain keeps a disconnected peer's gossipsub score, so that
	// reconnecting does not wipe it.
	scoreRetain = 10 * time.Minute
	// scoreInspectInterval is how often the scores are checked against
	// the disconnect threshold.
	scoreInspectInterval = time.Second
)

// appScores is the application score of each peer, decayed lazily: a
// value and when it was last set.
type appScores struct {
	halfLife time.Duration
	now      func() time.Time

	mu sync.Mutex
	m  map[peer.ID]appScore
}

type appScore struct {
	v  float64
	at time.Time
}

func newAppScores(halfLife time.Duration) *appScores {
	return &appScores{halfLife: halfLife, now: time.Now, m: map[peer.ID]appScore{}}
}

func (s *appScores) decayed(a appScore, now time.Time) float64 {
	return a.v * math.Exp2(-float64(now.Sub(a.at))/float64(s.halfLife))
}

// get is gossipsub's AppSpecificScore.
func (s *appScores) get(p peer.ID) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[p]
	if !ok {
		return 0
	}
	return s.decayed(a, s.now())
}

// add adds delta to p's score and returns the new score.
func (s *appScores) add(p peer.ID, delta float64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	v := delta
	if a, ok := s.m[p]; ok {
		v += s.decayed(a, now)
	} else if len(s.m) >= appScoreMaxPeers {
		s.evictLocked(now)
	}
	v = min(max(v, appScoreFloor), appScoreCeiling)
	s.m[p] = appScore{v: v, at: now}
	return v
}

// evictLocked forgets the scores that have decayed to nothing, or else the
// one nearest 0.
func (s *appScores) evictLocked(now time.Time) {
	var (
		nearest peer.ID
		least   = math.Inf(1)
	)
	for p, a := range s.m {
		v := math.Abs(s.decayed(a, now))
		if v < 0.01 {
			delete(s.m, p)
			continue
		}
		if v < least {
			nearest, least = p, v
		}
	}
	if len(s.m) >= appScoreMaxPeers {
		delete(s.m, nearest)
	}
}

// scoring is the peer scoring of one run of the network (Start to Stop).
type scoring struct {
	cfg    ScoreConfig
	scores *appScores
	// last is gossipsub's latest view of every peer's whole score (from
	// its score inspector, every scoreInspectInterval).
	last atomic.Pointer[map[peer.ID]float64]
}

// graylisted reports whether p's whole score was below the graylist
// threshold at the last inspection.
func (sc *scoring) graylisted(p peer.ID) bool {
	m := sc.last.Load()
	return m != nil && (*m)[p] < sc.cfg.GraylistThreshold
}

// ScorePeer implements sdk.PeerScorer. delta is added to the peer's
// application score (bounded to [-1000, 10], halved every
// score_app_half_life); a peer whose score falls below
// score_disconnect_threshold is cut off at once for score_block_for.
func (n *Network) ScorePeer(ctx context.Context, p string, delta float64, reason string) error {
	n.mu.Lock()
	sc, started := n.scoring, n.started
	n.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	id, err := peer.Decode(p)
	if err != nil {
		return fmt.Errorf("score peer: bad peer id %q: %w: %v", p, sdk.ErrInvalidArgument, err)
	}
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return fmt.Errorf("score peer %s: delta %v is not a finite number: %w", p, delta, sdk.ErrInvalidArgument)
	}
	if v, low := n.penalise(sc, id, delta, reason); low {
		n.cutOff(ctx, sc, id, v, reason)
	}
	return nil
}

// penalise adds delta to id's application score; low says that this
// alone takes the peer below the disconnect threshold, and the caller
// cuts it off (a peer that does not speak pubsub has no gossipsub score
// for checkScores to see).
func (n *Network) penalise(sc *scoring, id peer.ID, delta float64, reason string) (score float64, low bool) {
	v := sc.scores.add(id, delta)
	n.logger.Debug("peer scored", "peer", id.String(), "delta", delta, "score", v, "reason", reason)
	return v, v < sc.cfg.DisconnectThreshold
}

// checkScores is gossipsub's score inspector: it cuts off the connected
// peers whose whole score is below the disconnect threshold.
func (n *Network) checkScores(sc *scoring, scores map[peer.ID]float64) {
	sc.last.Store(&scores)
	if hook := n.scoreHook; hook != nil {
		hook(scores)
	}
	h, _, _, err := n.running()
	if err != nil {
		return
	}
	for p, v := range scores {
		if v < sc.cfg.DisconnectThreshold && h.Network().Connectedness(p) == network.Connected {
			n.cutOff(context.Background(), sc, p, v, "pubsub peer score")
		}
	}
}

// cutOff blocks p for score_block_for.
func (n *Network) cutOff(ctx context.Context, sc *scoring, p peer.ID, score float64, reason string) {
	if _, blocked := n.gater.blockedUntil(p); blocked {
		return
	}
	n.cutOffs.Add(1)
	why := fmt.Sprintf("score %.1f below %v (%s)", score, sc.cfg.DisconnectThreshold, reason)
	if err := n.BlockPeer(ctx, p.String(), why, sc.cfg.BlockFor); err != nil {
		n.logger.Debug("cut off peer", "peer", p.String(), "err", err)
	}
}

// peerScoreOptions enable gossipsub peer scoring as described above.
func (n *Network) peerScoreOptions(sc *scoring) []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithPeerScore(&pubsub.PeerScoreParams{
			SkipAtomicValidation: true,
			Topics:               map[string]*pubsub.TopicScoreParams{}, // set per topic as it is joined
			AppSpecificScore:     sc.scores.get,
			AppSpecificWeight:    1,
			DecayInterval:        scoreDecayInterval,
			DecayToZero:          0.01,
			RetainScore:          scoreRetain,
		}, &pubsub.PeerScoreThresholds{
			SkipAtomicValidation: true,
			GossipThreshold:      sc.cfg.GossipThreshold,
			PublishThreshold:     sc.cfg.PublishThreshold,
			GraylistThreshold:    sc.cfg.GraylistThreshold,
		}),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(func(m map[peer.ID]float64) { n.checkScores(sc, m) }), scoreInspectInterval),
	}
}

// topicScoreParams are the score parameters of every topic.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // unused (weight 0), but gossipsub divides by it
		InvalidMessageDeliveriesWeight: invalidMessageWeight,
		InvalidMessageDeliveriesDecay:  invalidMessageDecay,
	}
}
