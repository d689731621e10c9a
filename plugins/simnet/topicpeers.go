package simnet

import (
	"context"
	"sync"

	"github.com/skein-p2p/skein/internal/queue"
	"github.com/skein-p2p/skein/sdk"
)

var _ sdk.TopicPeerNotifier = (*Node)(nil)

// topicStream is one TopicPeerEvents stream: the peers it reported as
// joined, and its queue. A peer is on a topic while its connection to the
// node is live and it subscribes to the topic (subscriptions reach every
// peer at once in the simulation, as if announced with no delay).
type topicStream struct {
	topic string
	q     *queue.Queue[sdk.TopicPeerEvent]

	mu     sync.Mutex // serialises refreshes, so events keep their order
	joined map[string]bool
}

// TopicPeerEvents implements sdk.TopicPeerNotifier.
func (nd *Node) TopicPeerEvents(ctx context.Context, topic string) (<-chan sdk.TopicPeerEvent, error) {
	ts := &topicStream{topic: topic, q: queue.New[sdk.TopicPeerEvent](0), joined: map[string]bool{}}
	nd.mu.Lock()
	if !nd.up {
		nd.mu.Unlock()
		return nil, ErrStopped
	}
	nd.topicStreams[ts] = struct{}{}
	nd.mu.Unlock()
	nd.refreshTopicStream(ts) // the peers on the topic now, first
	out := make(chan sdk.TopicPeerEvent)
	go func() {
		defer close(out)
		defer func() {
			nd.mu.Lock()
			delete(nd.topicStreams, ts)
			nd.mu.Unlock()
		}()
		forward(ctx, ts.q, out)
	}()
	return out, nil
}

// refreshTopicStreams reports, on each of the node's topic streams, the
// peers that joined or left the stream's topic since it last looked.
func (nd *Node) refreshTopicStreams() {
	nd.mu.Lock()
	streams := make([]*topicStream, 0, len(nd.topicStreams))
	for ts := range nd.topicStreams {
		streams = append(streams, ts)
	}
	nd.mu.Unlock()
	for _, ts := range streams {
		nd.refreshTopicStream(ts)
	}
}

func (nd *Node) refreshTopicStream(ts *topicStream) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := map[string]bool{}
	for _, p := range nd.net.livePeers(nd.id) {
		if p.subscribed(ts.topic) {
			now[p.id] = true
		}
	}
	for p := range ts.joined {
		if !now[p] {
			delete(ts.joined, p)
			ts.q.Push(sdk.TopicPeerEvent{Peer: p, Joined: false})
		}
	}
	for _, p := range sortedKeys(now) {
		if !ts.joined[p] {
			ts.joined[p] = true
			ts.q.Push(sdk.TopicPeerEvent{Peer: p, Joined: true})
		}
	}
}

// subscriptionsChanged tells nd's live peers that nd's subscriptions
// changed.
func (nd *Node) subscriptionsChanged() {
	for _, p := range nd.net.livePeers(nd.id) {
		p.refreshTopicStreams()
	}
}
