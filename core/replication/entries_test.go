package replication_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/skein-p2p/skein/core/log"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// newestFirst returns the log's entries' blocks, newest first.
func newestFirst(t testing.TB, l *log.Log) [][]byte {
	t.Helper()
	var out [][]byte
	for e, err := range l.Entries(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Bytes())
	}
	slices.Reverse(out)
	return out
}

func cids(blocks [][]byte) []cid.Cid {
	out := make([]cid.Cid, len(blocks))
	for i, b := range blocks {
		out[i] = cidOf(b)
	}
	return out
}

func sorted(cs ...cid.Cid) []cid.Cid {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return out
}

func TestEntriesWireRoundTripAndRejects(t *testing.T) {
	blocks := [][]byte{[]byte("entry one"), []byte("entry two")}
	c1, c2, c3 := cidOf([]byte("x")), cidOf([]byte("y")), cidOf([]byte("z"))
	id := replication.LogIDFor("topic", "messages")
	req := &replication.EntriesRequest{Log: id, Want: sorted(c1, c2), Have: sorted(c3), MaxEntries: 10, MaxBytes: 1000}
	reqBytes, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := replication.DecodeEntriesRequest(reqBytes)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.MarshalBinary(); !bytes.Equal(again, reqBytes) {
		t.Fatal("request does not round-trip")
	}
	resp := &replication.EntriesResponse{Log: id, Blocks: blocks, More: []cid.Cid{c3}}
	respBytes, err := resp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rback, err := replication.DecodeEntriesResponse(respBytes)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := rback.MarshalBinary(); !bytes.Equal(again, respBytes) {
		t.Fatal("response does not round-trip")
	}

	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	// Offsets in the request: 2 header, 16 log id, then the want count.
	wantAt := 2 + replication.LogIDSize
	tests := []struct {
		name     string
		request  bool
		data     []byte
		contains string
	}{
		{"request: empty", true, nil, "truncated"},
		{"request: version", true, mutate(reqBytes, func(b []byte) []byte { b[0] = 2; return b }), "version"},
		{"request: kind of a response", true, mutate(reqBytes, func(b []byte) []byte { b[1] = 6; return b }), "kind"},
		{"request: trailing byte", true, append(bytes.Clone(reqBytes), 0), "trailing"},
		{"request: truncated", true, reqBytes[:len(reqBytes)-1], ""},
		{"request: nothing wanted", true, mutate(reqBytes, func(b []byte) []byte {
			return append(append(b[:wantAt:wantAt], 0, 0), 1, 1)
		}), "at least 1"},
		{"request: wants out of order", true, mutate(reqBytes, func(b []byte) []byte {
			w1, w2 := bytes.Clone(b[wantAt+1:wantAt+37]), bytes.Clone(b[wantAt+37:wantAt+73])
			copy(b[wantAt+1:], w2)
			copy(b[wantAt+37:], w1)
			return b
		}), "not sorted"},
		{"request: want not a log cid", true, mutate(reqBytes, func(b []byte) []byte { b[wantAt+2] = 0x55; return b }), "not a CIDv1"},
		{"request: too many wanted", true, mutate(reqBytes, func(b []byte) []byte { b[wantAt] = 65; return b }), "at most 64"},
		{"request: zero max entries", true, mutate(reqBytes, func(b []byte) []byte {
			return append(b[:len(b)-3], 0, 0xe8, 0x07)
		}), "zero limit"},
		{"request: max entries over the limit", true, mutate(reqBytes, func(b []byte) []byte {
			return binary.AppendUvarint(binary.AppendUvarint(b[:len(b)-3], replication.MaxEntriesBatch+1), 1000)
		}), "max entries"},
		{"request: non-minimal varint", true, mutate(reqBytes, func(b []byte) []byte {
			return append(b[:len(b)-3], 0x8a, 0x00, 0xe8, 0x07)
		}), "non-minimal"},
		{"response: version", false, mutate(respBytes, func(b []byte) []byte { b[0] = 0; return b }), "version"},
		{"response: kind of a request", false, mutate(respBytes, func(b []byte) []byte { b[1] = 5; return b }), "kind"},
		{"response: trailing byte", false, append(bytes.Clone(respBytes), 0), "trailing"},
		{"response: empty block", false, mutate(respBytes, func(b []byte) []byte {
			return append(append(b[:2+replication.LogIDSize:2+replication.LogIDSize], 1, 0), 0)
		}), "empty block"},
		{"response: duplicate block", false, func() []byte {
			b := append([]byte{1, 6}, id[:]...)
			b = append(b, 2, 3, 'a', 'b', 'c', 3, 'a', 'b', 'c', 0)
			return b
		}(), "duplicate"},
		{"response: continuation names a block sent", false, func() []byte {
			b := append([]byte{1, 6}, id[:]...)
			b = append(b, 1, 3, 'a', 'b', 'c', 1)
			return append(b, cidOf([]byte("abc")).Bytes()...)
		}(), "names a block sent"},
		{"response: too many blocks", false, func() []byte {
			b := append([]byte{1, 6}, id[:]...)
			return binary.AppendUvarint(b, replication.MaxEntriesBatch+1)
		}(), "block count"},
		{"response: block too large", false, func() []byte {
			b := append([]byte{1, 6}, id[:]...)
			return binary.AppendUvarint(append(b, 1), replication.MaxEntryBlock+1)
		}(), "block size"},
		{"response: oversize", false, make([]byte, replication.MaxEntriesMessage+1), "at most"},
		{"response: truncated block", false, respBytes[:2+replication.LogIDSize+4], "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.request {
				_, err = replication.DecodeEntriesRequest(tc.data)
			} else {
				_, err = replication.DecodeEntriesResponse(tc.data)
			}
			if !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("decode: %v, want ErrMalformedMessage", err)
			}
			if tc.contains != "" && !bytes.Contains([]byte(err.Error()), []byte(tc.contains)) {
				t.Fatalf("error %q does not mention %q", err, tc.contains)
			}
		})
	}
}

func TestMarshalRejectsBadEntriesMessages(t *testing.T) {
	id := replication.LogIDFor("topic", "messages")
	c := cidOf([]byte("x"))
	tests := []struct {
		name string
		msg  interface{ MarshalBinary() ([]byte, error) }
	}{
		{"request without want", &replication.EntriesRequest{Log: id, MaxEntries: 1, MaxBytes: 1}},
		{"request with zero limits", &replication.EntriesRequest{Log: id, Want: []cid.Cid{c}}},
		{"request over the byte limit", &replication.EntriesRequest{Log: id, Want: []cid.Cid{c}, MaxEntries: 1, MaxBytes: replication.MaxEntriesBytes + 1}},
		{"request with duplicate want", &replication.EntriesRequest{Log: id, Want: []cid.Cid{c, c}, MaxEntries: 1, MaxBytes: 1}},
		{"response with an empty block", &replication.EntriesResponse{Log: id, Blocks: [][]byte{{}}}},
		{"response with a duplicate block", &replication.EntriesResponse{Log: id, Blocks: [][]byte{{1}, {1}}}},
		{"response continuing at a block sent", &replication.EntriesResponse{Log: id, Blocks: [][]byte{{1}}, More: []cid.Cid{cidOf([]byte{1})}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.msg.MarshalBinary(); !errors.Is(err, replication.ErrMalformedMessage) {
				t.Fatalf("marshal: %v, want ErrMalformedMessage", err)
			}
		})
	}
}

// FuzzDecodeEntries: decoding never panics, and what decodes re-encodes to
// the same bytes.
func FuzzDecodeEntries(f *testing.F) {
	id := replication.LogIDFor("topic", "messages")
	c1, c2 := cidOf([]byte("x")), cidOf([]byte("y"))
	for _, m := range []interface{ MarshalBinary() ([]byte, error) }{
		&replication.EntriesRequest{Log: id, Want: sorted(c1, c2), MaxEntries: 1024, MaxBytes: 1 << 20},
		&replication.EntriesRequest{Log: id, Want: []cid.Cid{c1}, Have: []cid.Cid{c2}, MaxEntries: 1, MaxBytes: 1},
		&replication.EntriesResponse{Log: id},
		&replication.EntriesResponse{Log: id, Blocks: [][]byte{[]byte("a"), []byte("b")}, More: []cid.Cid{c1}},
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if x, err := replication.DecodeEntriesRequest(data); err == nil {
			again, err := x.MarshalBinary()
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("request not canonical: %v", err)
			}
		} else if !errors.Is(err, replication.ErrMalformedMessage) {
			t.Fatalf("request error %v does not wrap ErrMalformedMessage", err)
		}
		if x, err := replication.DecodeEntriesResponse(data); err == nil {
			again, err := x.MarshalBinary()
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("response not canonical: %v", err)
			}
		} else if !errors.Is(err, replication.ErrMalformedMessage) {
			t.Fatalf("response error %v does not wrap ErrMalformedMessage", err)
		}
	})
}

// requestEntries asks to for entries of the test log as peer from.
func requestEntries(t testing.TB, from *simnet.Node, to string, req *replication.EntriesRequest) (*replication.EntriesResponse, error) {
	t.Helper()
	data, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	proveTo(t, from, to)
	raw, err := from.Request(context.Background(), to, replication.EntriesProtocol, data)
	if err != nil {
		return nil, err
	}
	resp, err := replication.DecodeEntriesResponse(raw)
	if err != nil {
		t.Fatalf("the responder sent a malformed response: %v", err)
	}
	return resp, nil
}

// TestEntriesResponderWalk asks a replica for entries directly and checks
// what it sends: the entries under the wanted heads and not under the
// requester's, newest first, within the limits, with a continuation that
// leads to the rest.
func TestEntriesResponderWalk(t *testing.T) {
	topic, _ := replication.Topic(testSecret)
	id := replication.LogIDFor(topic, "messages")
	sn, peers := simCluster(t, 1, nil, fastOpts()...)
	a := peers[0]
	appendN(t, a, 100, "a")
	all := newestFirst(t, a.log) // all[0] is the head
	asker, err := sn.AddNode("asker")
	if err != nil {
		t.Fatal(err)
	}
	sn.ConnectAll()
	head := []cid.Cid{cidOf(all[0])}
	tests := []struct {
		name        string
		have        []cid.Cid
		maxEntries  int
		maxBytes    int
		want        int // blocks expected (newest first) over all continuations
		firstBatch  int
		unknownHave bool
	}{
		{"everything", nil, 1024, 1 << 20, 100, 100, false},
		{"above what the requester has", []cid.Cid{cidOf(all[40])}, 1024, 1 << 20, 40, 40, false},
		{"requester has the head", head, 1024, 1 << 20, 0, 0, false},
		{"requester's head unknown to the responder", []cid.Cid{cidOf([]byte("elsewhere"))}, 1024, 1 << 20, 100, 100, true},
		{"count limit, continued", []cid.Cid{cidOf(all[70])}, 16, 1 << 20, 70, 16, false},
		{"byte limit, continued", nil, 1024, len(all[0]) * 3, 100, 3, false},
		{"byte limit below one block still sends one", nil, 1024, 1, 100, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]byte
			want := head
			for round := 0; len(want) > 0; round++ {
				if round > 200 {
					t.Fatal("the continuation does not end")
				}
				resp, err := requestEntries(t, asker, a.net.PeerID(), &replication.EntriesRequest{
					Log: id, Want: want, Have: sorted(tc.have...), MaxEntries: tc.maxEntries, MaxBytes: tc.maxBytes})
				if err != nil {
					t.Fatal(err)
				}
				if round == 0 && len(resp.Blocks) != tc.firstBatch {
					t.Fatalf("first batch has %d blocks, want %d", len(resp.Blocks), tc.firstBatch)
				}
				if len(resp.Blocks) > tc.maxEntries {
					t.Fatalf("%d blocks, asked for at most %d", len(resp.Blocks), tc.maxEntries)
				}
				got = append(got, resp.Blocks...)
				want = resp.More
			}
			if len(got) != tc.want {
				t.Fatalf("got %d blocks, want %d", len(got), tc.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], all[i]) {
					t.Fatalf("block %d is not the %d-th newest entry", i, i)
				}
			}
		})
	}
	if bl := a.rep.Status().Blocked; len(bl) != 0 {
		t.Fatalf("an honest requester was cut off: %v", bl)
	}
}

// TestEntriesRequestsRefused: a peer that names a log the responder does
// not replicate gets an error and is not cut off (it may just replicate
// other logs); a malformed request gets its sender cut off.
func TestEntriesRequestsRefused(t *testing.T) {
	topic, _ := replication.Topic(testSecret)
	tests := []struct {
		name    string
		request []byte
		blocked bool
	}{
		{"log not replicated", func() []byte {
			b, err := (&replication.EntriesRequest{Log: replication.LogIDFor(topic, "other channel"),
				Want: []cid.Cid{cidOf([]byte("x"))}, MaxEntries: 10, MaxBytes: 1000}).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), false},
		{"malformed request", []byte{1, 5, 0xff}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sn, peers := simCluster(t, 1, nil, fastOpts()...)
			appendN(t, peers[0], 3, "a")
			evil := evilPeer(t, sn)
			resp, err := evil.Request(context.Background(), peers[0].net.PeerID(), replication.EntriesProtocol, tc.request)
			if err == nil {
				t.Fatalf("answered with %d bytes", len(resp))
			}
			blocked := len(peers[0].rep.Status().Blocked) > 0
			if blocked != tc.blocked {
				t.Fatalf("requester cut off: %v, want %v (%v)", blocked, tc.blocked, peers[0].rep.Status().Blocked)
			}
		})
	}
}

// TestLyingEntriesResponder: a peer that names heads in a head exchange and
// answers the bulk fetch of them badly is cut off exactly when its answer
// proves it at fault; otherwise the victim falls back to fetching blocks
// one by one and converges.
func TestLyingEntriesResponder(t *testing.T) {
	const n = 40
	tests := []struct {
		name string
		// answer is evil's entries handler (nil: evil lacks the protocol);
		// genuine holds a's entry blocks, newest first; forged a forged
		// entry named by lie.
		answer  func(req *replication.EntriesRequest, genuine [][]byte, forged []byte) ([]byte, error)
		forge   bool // evil names the forged entry as its head
		cutOff  bool
		victimO []replication.Option
	}{
		{name: "lacks the protocol"},
		{name: "refuses", answer: func(*replication.EntriesRequest, [][]byte, []byte) ([]byte, error) {
			return nil, errors.New("busy")
		}},
		{name: "empty answer", answer: func(req *replication.EntriesRequest, _ [][]byte, _ []byte) ([]byte, error) {
			return (&replication.EntriesResponse{Log: req.Log}).MarshalBinary()
		}},
		{name: "garbage", cutOff: true, answer: func(*replication.EntriesRequest, [][]byte, []byte) ([]byte, error) {
			return []byte("not an entries response"), nil
		}},
		{name: "oversize", cutOff: true, answer: func(*replication.EntriesRequest, [][]byte, []byte) ([]byte, error) {
			return make([]byte, replication.MaxEntriesMessage+1), nil
		}},
		{name: "another log's id", cutOff: true, answer: func(req *replication.EntriesRequest, genuine [][]byte, _ []byte) ([]byte, error) {
			return (&replication.EntriesResponse{Log: replication.LogIDFor("x", "y"), Blocks: genuine[:1]}).MarshalBinary()
		}},
		{name: "block not asked for", cutOff: true, answer: func(req *replication.EntriesRequest, genuine [][]byte, _ []byte) ([]byte, error) {
			// Genuine entries, but not starting at what was wanted.
			return (&replication.EntriesResponse{Log: req.Log, Blocks: genuine[1:3]}).MarshalBinary()
		}},
		{name: "more blocks than asked", cutOff: true, victimO: []replication.Option{replication.WithBulkFetch(2, 1<<20)},
			answer: func(req *replication.EntriesRequest, genuine [][]byte, _ []byte) ([]byte, error) {
				return (&replication.EntriesResponse{Log: req.Log, Blocks: genuine[:3]}).MarshalBinary()
			}},
		{name: "continuation not named by a block", cutOff: true, answer: func(req *replication.EntriesRequest, genuine [][]byte, _ []byte) ([]byte, error) {
			return (&replication.EntriesResponse{Log: req.Log, Blocks: genuine[:1], More: []cid.Cid{cidOf(genuine[5])}}).MarshalBinary()
		}},
		{name: "forged entry", forge: true, cutOff: true, answer: func(req *replication.EntriesRequest, _ [][]byte, forged []byte) ([]byte, error) {
			return (&replication.EntriesResponse{Log: req.Log, Blocks: [][]byte{forged}}).MarshalBinary()
		}},
		{name: "honest answer", answer: func(req *replication.EntriesRequest, genuine [][]byte, _ []byte) ([]byte, error) {
			// Serve the walk from the first wanted entry down.
			for i, b := range genuine {
				if cidOf(b).Equals(req.Want[0]) {
					end := min(len(genuine), i+req.MaxEntries)
					return (&replication.EntriesResponse{Log: req.Log, Blocks: genuine[i:end]}).MarshalBinary()
				}
			}
			return (&replication.EntriesResponse{Log: req.Log}).MarshalBinary()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sn := simnet.New()
			t.Cleanup(func() { _ = sn.Close() })
			keyA := newKey(t)
			access := log.AllowWriters(keyA.Public().(ed25519.PublicKey))
			// a writes alone; its entries reach the victim only through
			// evil, which holds copies of them.
			na, _ := sn.AddNode("a")
			a := startPeer(t, "a", na, keyA, access, fastOpts()...)
			appendN(t, a, n, "a")
			genuine := newestFirst(t, a.log)
			forged := forgedEntry(t, keyA)
			evil, _ := sn.AddNode("evil")
			for _, b := range genuine {
				putRaw(t, evil, b)
			}
			head := cidOf(genuine[0])
			if tc.forge {
				head = cidOf(forged)
			}
			lieInHeadExchange(t, evil, head)
			if tc.answer != nil {
				err := evil.HandleRequests(replication.EntriesProtocol, func(_ context.Context, _ string, raw []byte) ([]byte, error) {
					req, err := replication.DecodeEntriesRequest(raw)
					if err != nil {
						return nil, err
					}
					return tc.answer(req, genuine, forged)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			nv, _ := sn.AddNode("victim")
			victim := startPeer(t, "victim", nv, newKey(t), access, fastOpts(tc.victimO...)...)
			sn.Partition([]string{"a"})
			sn.ConnectAll()
			// The victim may act on the proof (ask evil for heads and
			// entries, and cut it off) before its answer reaches evil:
			// only the victim's side of the proof matters here.
			_, _ = replication.Prove(context.Background(), evil, "evil", "victim", []*replication.TopicKeys{testKeys(t)})

			if tc.cutOff {
				waitFor(t, 10*time.Second, func() string { return "the victim to cut evil off" }, func() bool {
					st := victim.rep.Status()
					return len(st.Blocked) == 1 && st.Blocked[0].Peer == "evil" && nv.Blocked("evil")
				})
				if victim.log.Len() > n {
					t.Fatalf("the victim has %d entries, more than a wrote", victim.log.Len())
				}
				return
			}
			waitFor(t, 10*time.Second, lens([]*peerNode{victim}), func() bool { return victim.log.Len() == n })
			if bl := victim.rep.Status().Blocked; len(bl) != 0 {
				t.Fatalf("evil was cut off without proof: %v", bl)
			}
			if !slices.EqualFunc(order(t, victim.log), order(t, a.log), cid.Cid.Equals) {
				t.Fatal("the victim's order differs from the writer's")
			}
		})
	}
}

// catchUp appends n entries on a while b is away, brings b back and waits
// until it has them all; it returns b's status of the log.
func catchUp(t testing.TB, a, b *peerNode, n int, away, back func()) replication.LogStatus {
	t.Helper()
	away()
	appendN(t, a, n, "away")
	// Let a's announcer finish (it paces a burst), so that b catches up
	// from what it asks for, not from announcements it could catch (with
	// anti-entropy on, a keeps publishing digests: then this only waits
	// for a quiet moment).
	waitFor(t, 30*time.Second, func() string { return "a's announcer to go quiet" }, func() bool {
		return time.Since(a.rep.Status().Logs[0].LastAnnounce) > 100*time.Millisecond
	})
	back()
	waitFor(t, 120*time.Second, lens([]*peerNode{a, b}), func() bool { return converged([]*peerNode{a, b}, a.log.Len()) })
	requireSameOrder(t, []*peerNode{a, b})
	return b.rep.Status().Logs[0]
}

// TestBulkCatchUpSimnet: a replica far behind catches up over simnet, in
// bulk when both sides can, one block at a time when either cannot.
func TestBulkCatchUpSimnet(t *testing.T) {
	tests := []struct {
		name     string
		entries  int
		aOpts    []replication.Option
		bOpts    []replication.Option
		wantBulk bool
	}{
		{"both bulk", 5000, nil, nil, true},
		{"small batches", 1000, nil, []replication.Option{replication.WithBulkFetch(64, 16<<10)}, true},
		{"responder without bulk", 1000, []replication.Option{replication.WithBulkFetch(0, 0)}, nil, false},
		{"requester without bulk", 1000, nil, []replication.Option{replication.WithBulkFetch(0, 0)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.entries
			if testing.Short() {
				n = min(n, 1000)
			}
			sn := simnet.New()
			t.Cleanup(func() { _ = sn.Close() })
			ka, kb := newKey(t), newKey(t)
			access := log.AllowWriters(ka.Public().(ed25519.PublicKey), kb.Public().(ed25519.PublicKey))
			na, _ := sn.AddNode("a")
			nb, _ := sn.AddNode("b")
			// No anti-entropy: the head exchange on reconnecting brings b
			// up to date, and a publishes nothing once its burst is out.
			hour := replication.WithAntiEntropyInterval(time.Hour)
			a := startPeer(t, "a", na, ka, access, fastOpts(append(tc.aOpts, hour)...)...)
			b := startPeer(t, "b", nb, kb, access, fastOpts(append(tc.bOpts, hour)...)...)
			sn.ConnectAll()
			appendN(t, b, 3, "b") // b is not empty: it names heads it has
			waitFor(t, 10*time.Second, lens([]*peerNode{a, b}), func() bool { return converged([]*peerNode{a, b}, 3) })
			st := catchUp(t, a, b, n, func() { sn.Partition([]string{"b"}) }, sn.Heal)
			if got := st.BulkReceived > 0; got != tc.wantBulk {
				t.Fatalf("bulk used: %v (%d blocks in %d requests), want %v", got, st.BulkReceived, st.BulkRequests, tc.wantBulk)
			}
			if tc.wantBulk && st.BulkReceived > uint64(n)+uint64(n)/10 {
				t.Fatalf("%d blocks received in bulk for %d entries missing", st.BulkReceived, n)
			}
			for _, p := range []*peerNode{a, b} {
				if bl := p.rep.Status().Blocked; len(bl) != 0 {
					t.Fatalf("%s cut off %v", p.name, bl)
				}
			}
		})
	}
}

// TestBulkCatchUpOverIPFS: the same over plugins/ipfs on 127.0.0.1.
func TestBulkCatchUpOverIPFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two libp2p hosts")
	}
	peers := ipfsCluster(t, 2, false, replication.WithAntiEntropyInterval(500*time.Millisecond))
	st := catchUp(t, peers[0], peers[1], 5000, func() {}, func() { connectPeers(t, peers) })
	if st.BulkReceived == 0 {
		t.Fatal("the catch-up did not use the bulk fetch")
	}
	t.Logf("caught up 5000 entries: %d bulk requests, %d blocks", st.BulkRequests, st.BulkReceived)
}

// TestAppendRightAfterConnectArrives: pubsub reaches a new peer only once
// it has learnt the peer's subscriptions, so an append announced just
// after the head exchange of a new connection can be lost. Here every
// announcement is lost and anti-entropy is off: only the exchanges that
// follow a connection bring the entry.
func TestAppendRightAfterConnectArrives(t *testing.T) {
	sn, peers := simCluster(t, 2, nil, fastOpts(replication.WithAntiEntropyInterval(time.Hour))...)
	a, b := peers[0], peers[1]
	appendN(t, a, 3, "before")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 3) })
	sn.SetLink("a", "b", simnet.Link{Loss: 1})
	sn.Disconnect("a", "b")
	received := b.rep.Status().Logs[0].Received
	if err := b.net.Connect(context.Background(), sdk.PeerInfo{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	// The exchange on connecting has run (both sides count the other's heads).
	waitFor(t, 10*time.Second, func() string { return "the head exchange on connecting" }, func() bool {
		return b.rep.Status().Logs[0].Received > received
	})
	lost := sn.Stats().Lost
	appendN(t, a, 1, "right after connecting")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 4) })
	if sn.Stats().Lost == lost {
		t.Fatal("the announcement was not lost: the test proves nothing")
	}
}

// TestBurstOnFreshConnectionArrives: a burst appended on a connection so
// new that pubsub loses its announcements arrives through the head
// exchange that follows each announcement to a peer connected just now,
// with no timed re-exchange and no anti-entropy to fall back on. The
// network reports no topic joins (pubsub has not learnt the peer's
// subscription: it is why announcements are lost), so nothing tells the
// writer that the exchange may be skipped.
func TestBurstOnFreshConnectionArrives(t *testing.T) {
	opts := fastOpts(replication.WithAntiEntropyInterval(time.Hour), replication.WithReexchange(time.Hour))
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	ka, kb := newKey(t), newKey(t)
	access := log.AllowWriters(ka.Public().(ed25519.PublicKey), kb.Public().(ed25519.PublicKey))
	var peers []*peerNode
	for _, p := range []struct {
		name string
		key  ed25519.PrivateKey
	}{{"a", ka}, {"b", kb}} {
		nd, err := sn.AddNode(p.name)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, startPeer(t, p.name, noJoinsNode{nd}, p.key, access, opts...))
	}
	sn.ConnectAll()
	a, b := peers[0], peers[1]
	appendN(t, a, 3, "before")
	waitFor(t, 10*time.Second, lens(peers), func() bool { return converged(peers, 3) })
	sn.SetLink("a", "b", simnet.Link{Loss: 1})
	sn.Disconnect("a", "b")
	received := b.rep.Status().Logs[0].Received
	if err := b.net.Connect(context.Background(), sdk.PeerInfo{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() string { return "the head exchange on connecting" }, func() bool {
		return b.rep.Status().Logs[0].Received > received
	})
	lost := sn.Stats().Lost
	appendN(t, a, 200, "burst")
	waitFor(t, 20*time.Second, lens(peers), func() bool { return converged(peers, 203) })
	if sn.Stats().Lost == lost {
		t.Fatal("no announcement was lost: the test proves nothing")
	}
}
