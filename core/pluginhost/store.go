package pluginhost

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/skein-p2p/skein/sdk"
)

// storeProxy is the sdk.Store the host hands out for a plugin: it follows
// the plugin across restarts.
//
// Retried after a crash (on the restarted plugin, within the call's
// context): Get, Has, Query (until it has yielded a first pair), Put,
// Delete and Batch. Put and Delete set absolute state, so applying one twice
// leaves what applying it once does. Batch is retried on the same ground:
// it is an atomic list of such absolute writes, so a second application of
// the whole batch is the same as one (a crash cannot leave half of it).
// The caveat is the same as for Put: a write by someone else between the
// two applications is overwritten, as if the retried call had come later.
//
// Not retried: Sync. A crash may have lost writes that were acknowledged
// before it without sync; a Sync on the restarted plugin would succeed and
// wrongly vouch for them. Sync fails with ErrPluginCrashed when it was in
// flight during a crash, and also when a write acknowledged without sync
// went to an instance that has since crashed: the caller learns that
// writes may have been lost.
type storeProxy struct {
	p *Plugin
	// unsyncedGen is the oldest instance gen with writes acknowledged
	// without sync since the last successful Sync (0: none).
	unsyncedGen atomic.Uint64
}

var _ sdk.Store = (*storeProxy)(nil)

// Store returns the plugin's store, valid across restarts.
func (p *Plugin) Store() (sdk.Store, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		if p.state == StateStopped || p.state == StateStopping {
			return nil, fmt.Errorf("plugin %s: %w", p.spec.Name, ErrPluginStopped)
		}
	} else if p.cur.store == nil {
		return nil, fmt.Errorf("plugin %s: %w: store", p.spec.Name, ErrKindNotServed)
	}
	if p.storeProxy == nil {
		p.storeProxy = &storeProxy{p: p}
	}
	return p.storeProxy, nil
}

func (s *storeProxy) do(ctx context.Context, op string, retry func() bool, fn func(sdk.Store) error) error {
	return s.p.call(ctx, op, retry, func(in *instance) error {
		if in.store == nil {
			return fmt.Errorf("plugin %s: %w: store", s.p.spec.Name, ErrKindNotServed)
		}
		return fn(in.store)
	})
}

func (s *storeProxy) wrote(gen uint64) { s.unsyncedGen.CompareAndSwap(0, gen) }

func (s *storeProxy) Get(ctx context.Context, key []byte) ([]byte, error) {
	var v []byte
	err := s.do(ctx, "store get", idempotent, func(st sdk.Store) error {
		var err error
		v, err = st.Get(ctx, key)
		return err
	})
	return v, err
}

func (s *storeProxy) Has(ctx context.Context, key []byte) (bool, error) {
	var ok bool
	err := s.do(ctx, "store has", idempotent, func(st sdk.Store) error {
		var err error
		ok, err = st.Has(ctx, key)
		return err
	})
	return ok, err
}

func (s *storeProxy) Put(ctx context.Context, key, value []byte) error {
	return s.p.call(ctx, "store put", idempotent, func(in *instance) error {
		if in.store == nil {
			return fmt.Errorf("plugin %s: %w: store", s.p.spec.Name, ErrKindNotServed)
		}
		if err := in.store.Put(ctx, key, value); err != nil {
			return err
		}
		s.wrote(in.gen)
		return nil
	})
}

func (s *storeProxy) Delete(ctx context.Context, key []byte) error {
	return s.p.call(ctx, "store delete", idempotent, func(in *instance) error {
		if in.store == nil {
			return fmt.Errorf("plugin %s: %w: store", s.p.spec.Name, ErrKindNotServed)
		}
		if err := in.store.Delete(ctx, key); err != nil {
			return err
		}
		s.wrote(in.gen)
		return nil
	})
}

func (s *storeProxy) Batch(ctx context.Context, ops []sdk.Op, sync bool) error {
	return s.p.call(ctx, "store batch", idempotent, func(in *instance) error {
		if in.store == nil {
			return fmt.Errorf("plugin %s: %w: store", s.p.spec.Name, ErrKindNotServed)
		}
		if err := in.store.Batch(ctx, ops, sync); err != nil {
			return err
		}
		if !sync {
			s.wrote(in.gen)
		}
		return nil
	})
}

func (s *storeProxy) Sync(ctx context.Context) error {
	return s.p.call(ctx, "store sync", notIdempotent, func(in *instance) error {
		if in.store == nil {
			return fmt.Errorf("plugin %s: %w: store", s.p.spec.Name, ErrKindNotServed)
		}
		u := s.unsyncedGen.Load()
		if err := in.store.Sync(ctx); err != nil {
			return err
		}
		if u != 0 && u < in.gen {
			s.unsyncedGen.CompareAndSwap(u, 0)
			return fmt.Errorf("plugin %s: store sync: %w since writes were acknowledged without sync; they may be lost",
				s.p.spec.Name, ErrPluginCrashed)
		}
		s.unsyncedGen.CompareAndSwap(u, 0)
		return nil
	})
}

// Query streams from the current instance. A crash before the first pair
// restarts the query on the restarted plugin; after it, the sequence ends
// with ErrPluginCrashed (the caller has seen part of a result that a new
// query might not reproduce).
func (s *storeProxy) Query(ctx context.Context, q sdk.Query) iter.Seq2[sdk.KeyValue, error] {
	return func(yield func(sdk.KeyValue, error) bool) {
		yielded, stopped := false, false
		canRetry := func() bool { return !yielded }
		err := s.do(ctx, "store query", canRetry, func(st sdk.Store) error {
			for kv, err := range st.Query(ctx, q) {
				if err != nil {
					return err
				}
				yielded = true
				if !yield(kv, nil) {
					stopped = true
					return nil
				}
			}
			return nil
		})
		if err == nil || stopped {
			return
		}
		yield(sdk.KeyValue{}, err)
	}
}
