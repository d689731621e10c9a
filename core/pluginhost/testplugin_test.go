package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/skein-p2p/skein/sdk"
)

// The test binary doubles as the plugins the tests launch: re-executed with
// testPluginEnv set, TestMain serves the named test plugin instead of
// running tests.
const testPluginEnv = "PLUGINHOST_TEST_PLUGIN"

const memStoreID = "test.memstore"

func TestMain(m *testing.M) {
	switch os.Getenv(testPluginEnv) {
	case "":
		Register(memStoreID, func() sdk.Plugin { return newMemStore() })
		Register(pipeID, func() sdk.Plugin { return newPipeTransport() })
		Register(loopNetworkID, func() sdk.Plugin { return newLoopNetwork() })
		Register(plainNetworkID, newPlainNetwork)
		os.Exit(m.Run())
	case "memstore":
		sdk.Serve(newMemStore())
	case "capturer":
		// Keeps the default logger when made, as network.ipfs does.
		sdk.ServeFunc(func() sdk.Plugin { return &loggerStore{memStore: newMemStore(), log: slog.Default()} })
	case "pipe":
		sdk.Serve(newPipeTransport())
	case "loopnetwork":
		sdk.Serve(newLoopNetwork())
	case "plainnetwork":
		sdk.Serve(newPlainNetwork())
	case "host":
		os.Exit(runTestHost())
	case "silent":
		// Never answers the handshake.
		select {}
	case "junk-stdout":
		// A plugin that breaks the rule: stdout carries the handshake.
		fmt.Println("hello from a chatty plugin")
		sdk.Serve(newMemStore())
	case "wrong-cookie":
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "OTHER_APP_PLUGIN", MagicCookieValue: "other"},
			Plugins:         goplugin.PluginSet{sdk.PluginName: foreignPlugin{}},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
	case "wrong-version":
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: 99, MagicCookieKey: sdk.MagicCookieKey, MagicCookieValue: sdk.MagicCookieValue},
			Plugins:         goplugin.PluginSet{sdk.PluginName: foreignPlugin{}},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", testPluginEnv, os.Getenv(testPluginEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// runTestHost is a node in miniature for TestPluginDiesWithHost: it
// launches the memstore plugin, prints its pid and waits to be killed.
func runTestHost() int {
	path, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sum, err := FileSHA256(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := New(nil)
	p, err := h.Launch(context.Background(), Spec{Name: "child", Command: path, SHA256: sum, Env: map[string]string{testPluginEnv: "memstore"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("PLUGINPID %d\n", p.PID())
	select {}
}

// foreignPlugin is a go-plugin gRPC plugin that is not a Skein plugin.
type foreignPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (foreignPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error { return nil }
func (foreignPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not used")
}

// memStore is the test plugin: an in-memory sdk.Store with knobs, set in
// its config, to misbehave on purpose.
//
//	hang_dir:    Sync, a Get of "hang" and a Query of prefix "hang/" after
//	             its first pair block (until ctx ends) the first time
//	             across restarts: a marker file in hang_dir remembers.
//	             On entering the hang the plugin prints "HANG <op>" to stderr.
//	ignore_stop: Stop never returns.
//	crash_dir:   Start succeeds once across restarts (a marker file in
//	             crash_dir remembers), then exits the process every time.
//
// A Get of "env:NAME" answers the plugin's environment variable NAME; of
// "config:hang_dir" the configured hang_dir; of "state:started" "true" once
// Start has run.
type memStore struct {
	mu         sync.Mutex
	data       map[string][]byte
	hangDir    string
	ignoreStop bool
	crashDir   string
	started    bool

	// discovery: advertised peers and FindPeers subscribers by namespace
	peers map[string][]sdk.PeerInfo
	subs  map[string][]chan sdk.PeerInfo
}

var (
	_ sdk.Plugin    = (*memStore)(nil)
	_ sdk.Store     = (*memStore)(nil)
	_ sdk.Discovery = (*memStore)(nil)
)

func newMemStore() *memStore {
	return &memStore{data: map[string][]byte{}, peers: map[string][]sdk.PeerInfo{}, subs: map[string][]chan sdk.PeerInfo{}}
}

func (s *memStore) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: memStoreID, Kinds: []sdk.Kind{sdk.KindStore, sdk.KindDiscovery}, Version: "0.0.1"}, nil
}

// Advertise makes self known to FindPeers under namespace until ctx ends.
func (s *memStore) Advertise(ctx context.Context, namespace string, self sdk.PeerInfo) error {
	s.mu.Lock()
	s.peers[namespace] = append(s.peers[namespace], self)
	for _, ch := range s.subs[namespace] {
		select {
		case ch <- self:
		default:
		}
	}
	s.mu.Unlock()
	<-ctx.Done()
	return nil
}

// FindPeers sends the peers advertised so far, then new ones, until ctx ends.
func (s *memStore) FindPeers(ctx context.Context, namespace string) (<-chan sdk.PeerInfo, error) {
	ch := make(chan sdk.PeerInfo, 16)
	s.mu.Lock()
	for _, p := range s.peers[namespace] {
		select {
		case ch <- p:
		default:
		}
	}
	s.subs[namespace] = append(s.subs[namespace], ch)
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		s.subs[namespace] = slices.DeleteFunc(s.subs[namespace], func(c chan sdk.PeerInfo) bool { return c == ch })
		close(ch)
		s.mu.Unlock()
	}()
	return ch, nil
}

func (s *memStore) Configure(_ context.Context, cfg map[string]any) ([]sdk.Diagnostic, error) {
	var diags []sdk.Diagnostic
	for k, v := range cfg {
		switch k {
		case "hang_dir":
			s.hangDir, _ = v.(string)
		case "ignore_stop":
			s.ignoreStop, _ = v.(bool)
		case "crash_dir":
			s.crashDir, _ = v.(string)
		default:
			diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: k, Message: "unknown key"})
		}
	}
	return diags, nil
}

func (s *memStore) Start(context.Context) error {
	if s.crashDir != "" {
		f, err := os.OpenFile(filepath.Join(s.crashDir, "started-once"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashing in Start")
			os.Exit(3)
		}
		f.Close()
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	fmt.Fprintln(os.Stderr, "memstore started")
	// A structured record through the sdk's logger (TestPluginLogRecords).
	slog.Warn("memstore warning", "free", "1%", slog.Group("disk", "dev", "sda", "ok", false))
	return nil
}

func (s *memStore) Stop(ctx context.Context) error {
	if s.ignoreStop {
		select {} // a plugin that ignores Stop: only a kill ends it
	}
	return nil
}

// hangOnce blocks until ctx ends if op has not hung before.
func (s *memStore) hangOnce(ctx context.Context, op string) error {
	if s.hangDir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.hangDir, "hung-"+op), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil // hung before
	}
	f.Close()
	fmt.Fprintln(os.Stderr, "HANG "+op)
	<-ctx.Done()
	return ctx.Err()
}

func (s *memStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	k := string(key)
	if name, ok := strings.CutPrefix(k, "env:"); ok {
		v, ok := os.LookupEnv(name)
		if !ok {
			return nil, sdk.ErrNotFound
		}
		return []byte(v), nil
	}
	switch k {
	case "config:hang_dir":
		return []byte(s.hangDir), nil
	case "state:started":
		s.mu.Lock()
		defer s.mu.Unlock()
		return []byte(fmt.Sprint(s.started)), nil
	}
	if k == "hang" {
		if err := s.hangOnce(ctx, "get"); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[k]
	if !ok {
		return nil, sdk.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (s *memStore) Put(_ context.Context, key, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[string(key)] = slices.Clone(value)
	return nil
}

func (s *memStore) Delete(_ context.Context, key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, string(key))
	return nil
}

func (s *memStore) Has(_ context.Context, key []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.data[string(key)]
	return ok, nil
}

func (s *memStore) Batch(_ context.Context, ops []sdk.Op, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if op.Delete {
			delete(s.data, string(op.Key))
		} else {
			s.data[string(op.Key)] = slices.Clone(op.Value)
		}
	}
	return nil
}

func (s *memStore) Query(ctx context.Context, q sdk.Query) iter.Seq2[sdk.KeyValue, error] {
	return func(yield func(sdk.KeyValue, error) bool) {
		s.mu.Lock()
		var kvs []sdk.KeyValue
		for k, v := range s.data {
			if strings.HasPrefix(k, string(q.Prefix)) {
				kv := sdk.KeyValue{Key: []byte(k)}
				if !q.KeysOnly {
					kv.Value = slices.Clone(v)
				}
				kvs = append(kvs, kv)
			}
		}
		s.mu.Unlock()
		slices.SortFunc(kvs, func(a, b sdk.KeyValue) int { return strings.Compare(string(a.Key), string(b.Key)) })
		if q.Limit > 0 && len(kvs) > q.Limit {
			kvs = kvs[:q.Limit]
		}
		for i, kv := range kvs {
			if !yield(kv, nil) {
				return
			}
			if i == 0 && string(q.Prefix) == "hang/" {
				if err := s.hangOnce(ctx, "query"); err != nil {
					yield(sdk.KeyValue{}, err)
					return
				}
			}
		}
	}
}

func (s *memStore) Sync(ctx context.Context) error { return s.hangOnce(ctx, "sync") }

// loggerStore is a memStore that logs through the logger it was given when
// made (TestPluginLogRecords).
type loggerStore struct {
	*memStore
	log *slog.Logger
}

func (s *loggerStore) Start(ctx context.Context) error {
	s.log.Warn("captured logger warning", "free", "1%", slog.Group("disk", "dev", "sda", "ok", false))
	return s.memStore.Start(ctx)
}
