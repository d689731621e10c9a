package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"testing"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// memNetwork is a one-node in-memory sdk.Network: blocks in a map,
// publish delivers to this node's subscribers.
type memNetwork struct {
	*plugintest.MemStore // lifecycle only
	mu                   sync.Mutex
	blocks               map[string][]byte
	subs                 map[string][]chan sdk.PubsubMessage
	peers                []sdk.PeerInfo
	providers            map[string][]sdk.PeerInfo
}

func newMemNetwork() *memNetwork {
	return &memNetwork{MemStore: plugintest.NewMemStore(), blocks: map[string][]byte{}, subs: map[string][]chan sdk.PubsubMessage{}, providers: map[string][]sdk.PeerInfo{}}
}

func (*memNetwork) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "network.memory", Kinds: []sdk.Kind{sdk.KindNetwork}, Version: "1"}, nil
}
func (*memNetwork) PeerID() string  { return "12D3KooWmem" }
func (*memNetwork) Addrs() []string { return []string{"/ip4/127.0.0.1/tcp/4001"} }
func (n *memNetwork) PutBlocks(_ context.Context, bs []sdk.Block) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range bs {
		n.blocks[string(b.CID)] = bytes.Clone(b.Data)
	}
	return nil
}
func (n *memNetwork) GetBlocks(_ context.Context, cids [][]byte) iter.Seq2[sdk.Block, error] {
	return func(yield func(sdk.Block, error) bool) {
		for _, c := range cids {
			n.mu.Lock()
			d, ok := n.blocks[string(c)]
			n.mu.Unlock()
			var err error
			if !ok {
				err = fmt.Errorf("block %x: %w", c, sdk.ErrNotFound)
			}
			if !yield(sdk.Block{CID: c, Data: d}, err) {
				return
			}
		}
	}
}
func (n *memNetwork) HasBlock(_ context.Context, c []byte) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.blocks[string(c)]
	return ok, nil
}
func (n *memNetwork) Publish(_ context.Context, topic string, data []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs[topic] {
		ch <- sdk.PubsubMessage{Topic: topic, From: n.PeerID(), Data: data}
	}
	return nil
}
func (n *memNetwork) Subscribe(_ context.Context, topic string) (<-chan sdk.PubsubMessage, error) {
	ch := make(chan sdk.PubsubMessage, 16)
	n.mu.Lock()
	n.subs[topic] = append(n.subs[topic], ch)
	n.mu.Unlock()
	return ch, nil
}
func (n *memNetwork) Connect(_ context.Context, p sdk.PeerInfo) error {
	if p.ID == "" {
		return fmt.Errorf("connect: empty peer id: %w", sdk.ErrInvalidArgument)
	}
	n.mu.Lock()
	n.peers = append(n.peers, p)
	n.mu.Unlock()
	return nil
}
func (n *memNetwork) Peers(context.Context) ([]sdk.PeerInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]sdk.PeerInfo(nil), n.peers...), nil
}
func (n *memNetwork) Provide(_ context.Context, c []byte) error {
	n.mu.Lock()
	n.providers[string(c)] = append(n.providers[string(c)], sdk.PeerInfo{ID: n.PeerID()})
	n.mu.Unlock()
	return nil
}
func (n *memNetwork) FindProviders(_ context.Context, c []byte) (<-chan sdk.PeerInfo, error) {
	n.mu.Lock()
	ps := append([]sdk.PeerInfo(nil), n.providers[string(c)]...)
	n.mu.Unlock()
	ch := make(chan sdk.PeerInfo, len(ps))
	for _, p := range ps {
		ch <- p
	}
	close(ch)
	return ch, nil
}

func TestNetworkAcrossTheWire(t *testing.T) {
	rp := plugintest.StartProcess(t, "network")
	n, ok := rp.Network()
	if !ok {
		t.Fatal("plugin does not serve a network")
	}
	ctx := ctxT(t)
	if n.PeerID() != "12D3KooWmem" || len(n.Addrs()) != 1 {
		t.Fatalf("peer id %q, addrs %v", n.PeerID(), n.Addrs())
	}
	if err := n.PutBlocks(ctx, []sdk.Block{{CID: []byte("c1"), Data: []byte("one")}, {CID: []byte("c2"), Data: []byte{}}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var missing error
	for b, err := range n.GetBlocks(ctx, [][]byte{[]byte("c1"), []byte("nope"), []byte("c2")}) {
		if err != nil {
			missing = err
			continue
		}
		got[string(b.CID)] = string(b.Data)
	}
	if got["c1"] != "one" || len(got) != 2 {
		t.Fatalf("blocks = %v", got)
	}
	if !errors.Is(missing, sdk.ErrNotFound) {
		t.Fatalf("missing block: err = %v, want sdk.ErrNotFound", missing)
	}
	if ok, err := n.HasBlock(ctx, []byte("c1")); err != nil || !ok {
		t.Fatalf("has c1 = %v, %v", ok, err)
	}
	msgs, err := n.Subscribe(ctx, "topic")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(ctx, "topic", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m := <-msgs; m.Topic != "topic" || string(m.Data) != "hello" || m.From != "12D3KooWmem" {
		t.Fatalf("message = %+v", m)
	}
	if err := n.Connect(ctx, sdk.PeerInfo{}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("connect empty: err = %v, want sdk.ErrInvalidArgument", err)
	}
	if err := n.Connect(ctx, sdk.PeerInfo{ID: "p2", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}); err != nil {
		t.Fatal(err)
	}
	if ps, err := n.Peers(ctx); err != nil || len(ps) != 1 || ps[0].ID != "p2" {
		t.Fatalf("peers = %+v, %v", ps, err)
	}
	if err := n.Provide(ctx, []byte("c1")); err != nil {
		t.Fatal(err)
	}
	provs, err := n.FindProviders(ctx, []byte("c1"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for p := range provs {
		ids = append(ids, p.ID)
	}
	if len(ids) != 1 || ids[0] != "12D3KooWmem" {
		t.Fatalf("providers = %v", ids)
	}
}
