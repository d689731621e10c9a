package log

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
)

// syncRecorder is a KV that records, for every batch, its size and
// whether it was synced.
type syncRecorder struct {
	*MemKV
	batches []recordedBatch
}

type recordedBatch struct {
	ops  int
	sync bool
}

func (k *syncRecorder) Batch(ctx context.Context, ops []KVOp, sync bool) error {
	k.batches = append(k.batches, recordedBatch{len(ops), sync})
	return k.MemKV.Batch(ctx, ops, sync)
}

func TestAppendWith(t *testing.T) {
	ctx := context.Background()
	refused := errors.New("no room")
	for _, tc := range []struct {
		name      string
		syncLog   bool
		extra     func(*Entry) ([]KVOp, error)
		wantErr   error
		wantSync  bool
		wantExtra bool
	}{
		{"no extra, unsynced log", false, nil, nil, false, false},
		{"no extra, synced log", true, nil, nil, true, false},
		{"extra ops: one synced batch even on an unsynced log", false,
			func(e *Entry) ([]KVOp, error) {
				return []KVOp{{Key: []byte("x/" + e.CID().String()), Value: []byte("v")}}, nil
			}, nil, true, true},
		{"extra fails: nothing written", true, func(*Entry) ([]KVOp, error) { return nil, refused }, refused, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := &syncRecorder{MemKV: NewMemKV()}
			blocks := NewMemBlockStore()
			key := testKey(t, 1)
			l, err := Open(ctx, testLogID, blocks, kv, NewKeySigner(key), AllowWriters(key.Public().(ed25519.PublicKey)), WithSyncWrites(tc.syncLog))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			kv.batches = nil
			e, err := l.AppendWith(ctx, []byte("payload"), tc.extra)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || len(kv.batches) != 0 || l.Len() != 0 || blocks.Len() != 0 {
					t.Fatalf("err = %v, %d batches, %d entries, %d blocks; want the error and nothing written", err, len(kv.batches), l.Len(), blocks.Len())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(kv.batches) != 1 || kv.batches[0].sync != tc.wantSync {
				t.Fatalf("batches %+v, want one with sync=%v", kv.batches, tc.wantSync)
			}
			_, err = kv.Get(ctx, []byte("x/"+e.CID().String()))
			if got := err == nil; got != tc.wantExtra {
				t.Fatalf("extra key written = %v, want %v", got, tc.wantExtra)
			}
		})
	}
}
