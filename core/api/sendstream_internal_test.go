package api

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

// gatedStore holds every Batch while closed.
type gatedStore struct {
	sdk.Store
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (s *gatedStore) close() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *gatedStore) open() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *gatedStore) Batch(ctx context.Context, ops []sdk.Op, sync bool) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.Store.Batch(ctx, ops, sync)
}

// fakeSendStream serves SendStream requests from a channel and collects
// acks; it counts the requests read.
type fakeSendStream struct {
	grpc.ServerStream
	ctx  context.Context
	reqs chan *apiv1.SendRequest
	acks chan *apiv1.SendAck
	mu   sync.Mutex
	read int
}

func (f *fakeSendStream) Context() context.Context     { return f.ctx }
func (f *fakeSendStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeSendStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeSendStream) SetTrailer(metadata.MD)       {}
func (f *fakeSendStream) Send(a *apiv1.SendAck) error  { f.acks <- a; return nil }
func (f *fakeSendStream) Recv() (*apiv1.SendRequest, error) {
	select {
	case r, ok := <-f.reqs:
		if !ok {
			return nil, io.EOF
		}
		f.mu.Lock()
		f.read++
		f.mu.Unlock()
		return r, nil
	case <-f.ctx.Done():
		return nil, f.ctx.Err()
	}
}

func (f *fakeSendStream) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read
}

// TestSendStreamBackpressure: while the window's sends are not durable
// (the store holds its writes), the node reads no further request; once
// the store lets them through, every message is acknowledged in order.
func TestSendStreamBackpressure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window int
		body   int
		// wantRead: requests read while the store is held.
		wantRead int
	}{
		{"by count", 4, 10, 4},
		{"by bytes", 64, apiv1.MaxMessageBytes, apiv1.MaxSendBytesInFlight/apiv1.MaxMessageBytes + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				sn := simnet.New()
				defer sn.Close()
				nd, err := sn.AddNode("a")
				if err != nil {
					t.Fatal(err)
				}
				ks, err := crypto.OpenKeystore(filepath.Join(t.TempDir(), "keys"))
				if err != nil {
					t.Fatal(err)
				}
				defer ks.Close()
				st := &gatedStore{Store: memstore.New()}
				m, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: st, Network: nd})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if _, err := m.CreateGroup(ctx, "g"); err != nil {
					t.Fatal(err)
				}
				srv := messagesServer{service: &service{m: m, sendWindow: tc.window}}
				const n = 40
				f := &fakeSendStream{ctx: ctx, reqs: make(chan *apiv1.SendRequest, n), acks: make(chan *apiv1.SendAck, n)}
				for i := range n {
					f.reqs <- &apiv1.SendRequest{Group: "g", Body: make([]byte, tc.body), Seq: uint64(i + 1)}
				}
				close(f.reqs)
				st.close()
				done := make(chan error, 1)
				go func() { done <- srv.SendStream(f) }()
				synctest.Wait()
				if got := f.readCount(); got != tc.wantRead {
					t.Fatalf("read %d requests while none was durable, want %d", got, tc.wantRead)
				}
				st.open()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				for i := range n {
					a := <-f.acks
					if a.GetSeq() != uint64(i+1) || a.GetCode() != 0 {
						t.Fatalf("ack %d: %v", i, a)
					}
				}
			})
		})
	}
}
