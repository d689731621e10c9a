package replication

// TopicJoinExchanges returns how many head exchanges r started because a
// proven peer joined a topic.
func TopicJoinExchanges(r *Replicator) int64 { return r.topicJoins.Load() }

// FreshExchangesSkipped returns how many head exchanges after an
// announcement r skipped because the fresh peer was reached by pubsub.
func FreshExchangesSkipped(r *Replicator) int64 { return r.freshSkipped.Load() }

// ReachedByPubsub reports whether r counts peer as reached by pubsub on
// any topic it replicates (joined and proven).
func ReachedByPubsub(r *Replicator, peer string) bool {
	r.mu.Lock()
	topics := make([]string, 0, len(r.topics))
	for t := range r.topics {
		topics = append(topics, t)
	}
	r.mu.Unlock()
	for _, t := range topics {
		if r.reachedByPubsub(peer, t) {
			return true
		}
	}
	return false
}
