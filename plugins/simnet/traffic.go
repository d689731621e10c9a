package simnet

import (
	"sync/atomic"
	"time"
)

// nodeTraffic counts the payload bytes a node puts on and takes off the
// simulated network: pubsub copies, block transfers, direct requests and
// their responses.
type nodeTraffic struct {
	sent, received atomic.Uint64
}

// Bytes returns the payload bytes the node has sent and received: every
// pubsub copy it put on a link (lost ones included) or took off one, the
// blocks it served or fetched, and its direct requests and responses.
// Framing that a real transport adds (libp2p, gossipsub) is not counted.
func (nd *Node) Bytes() (sent, received uint64) {
	return nd.traffic.sent.Load(), nd.traffic.received.Load()
}

// txTime is how long size bytes take at bw bytes per second.
func txTime(size int, bw int64) time.Duration {
	if bw <= 0 || size <= 0 {
		return 0
	}
	return time.Duration(float64(size) / float64(bw) * float64(time.Second))
}

// admitLocked accounts a pubsub copy of size bytes sent at now on the link
// from -> to of bandwidth bw: it starts once the link has sent what it
// already holds, and its arrival time at (latency and jitter from now)
// moves back by its wait and its own transfer time, keeping the link's
// order. bw <= 0 leaves at as is.
func (n *Network) admitLocked(from, to string, now, at time.Time, size int, bw int64) time.Time {
	if bw <= 0 {
		return at
	}
	if n.txBusy == nil {
		n.txBusy = map[dirLink]time.Time{}
	}
	k := dirLink{from, to}
	start := now
	if busy := n.txBusy[k]; busy.After(start) {
		start = busy
	}
	end := start.Add(txTime(size, bw))
	n.txBusy[k] = end
	at = at.Add(end.Sub(now))
	if at.After(n.lastAt[k]) {
		n.lastAt[k] = at
	}
	return at
}

// transferTime is how long a fetch of bytesFrom[peer] bytes from each
// peer takes: the slowest peer's round trip plus its bytes' transfer time
// at the link's bandwidth.
func (n *Network) transferTime(to string, bytesFrom map[string]int) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	var worst time.Duration
	for from, size := range bytesFrom {
		l := n.linkLocked(from, to)
		worst = max(worst, 2*l.Latency+txTime(size, l.Bandwidth))
	}
	return worst
}
