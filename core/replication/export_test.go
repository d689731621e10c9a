package replication

import "slices"

// TopicJoinExchanges returns how many head exchanges r started because a
// proven peer joined a topic.
func TopicJoinExchanges(r *Replicator) int64 { return r.topicJoins.Load() }

// FreshExchangesSkipped returns how many head exchanges after an
// announcement r skipped because the fresh peer was reached by pubsub.
func FreshExchangesSkipped(r *Replicator) int64 { return r.freshSkipped.Load() }

// ReachedByPubsub reports whether r counts peer as reached by pubsub on
// any topic it replicates (joined and proven).
func ReachedByPubsub(r *Replicator, peer string) bool {
	return anyTopic(r, func(t string) bool { return r.reachedByPubsub(peer, t) })
}

// anyTopic reports whether f holds for any topic r replicates (called
// without r.mu held).
func anyTopic(r *Replicator, f func(topic string) bool) bool {
	r.mu.Lock()
	topics := make([]string, 0, len(r.topics))
	for t := range r.topics {
		topics = append(topics, t)
	}
	r.mu.Unlock()
	return slices.ContainsFunc(topics, f)
}

// ReexchangesDue returns how many peers r has a head exchange due again
// with (reexchanges).
func ReexchangesDue(r *Replicator) int {
	q := &r.later
	q.init()
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.due)
}

// ExchangesRunning returns how many head exchanges r is running (or has
// due again right after the running one).
func ExchangesRunning(r *Replicator) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.exchanging) + len(r.again)
}

// ProvenOnAnyTopic reports whether peer proved to r it holds any topic r
// replicates, on its current connection.
func ProvenOnAnyTopic(r *Replicator, peer string) bool {
	return anyTopic(r, func(t string) bool { return r.proofs.has(peer, t) })
}
