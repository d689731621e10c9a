package replication

// TopicJoinExchanges returns how many head exchanges r started because a
// proven peer joined a topic.
func TopicJoinExchanges(r *Replicator) int64 { return r.topicJoins.Load() }

func FreshExchangesSkipped(r *Replicator) int64 { return r.freshSkipped.Load() }
