package store

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// TestDurabilityKill9OutOfProcess: the host writes synced batches to the
// pebble store plugin in its own process over the wire and SIGKILLs the
// plugin mid-stream; every batch whose Batch call returned is there after
// reopening, intact, and no batch is half there.
func TestDurabilityKill9OutOfProcess(t *testing.T) {
	rng := rand.New(rand.NewPCG(0x0ddba11, 7))
	dir := t.TempDir()
	next, rounds := 0, 2
	for round := range rounds {
		killAfter := 5 + rng.IntN(100)
		st, pid := startPluginProcess(t, dir)
		ctx := context.Background()
		acked := next - 1
		killed := false
		for seq := next; ; seq++ {
			if seq-next == killAfter && !killed {
				// Kill while the next batch is on its way: the call below
				// races the kill, as a real crash would.
				go func() { _ = syscall.Kill(pid, syscall.SIGKILL) }()
				killed = true
			}
			ops := make([]sdk.Op, 0, opsPerBatch+1)
			for j := range opsPerBatch {
				ops = append(ops, sdk.Op{Key: batchKey(seq, j), Value: batchValue(seq, j)})
			}
			ops = append(ops, sdk.Op{Key: []byte("seq-last"), Value: []byte(strconv.Itoa(seq))})
			if err := st.Batch(ctx, ops, true); err != nil {
				if !killed {
					t.Fatalf("round %d: batch %d before the kill: %v", round, seq, err)
				}
				break
			}
			acked = seq
		}
		waitFor(t, "plugin process to die", func() bool { return syscall.Kill(pid, 0) != nil })
		last := verifyBatches(t, dir, acked)
		t.Logf("round %d: kill after %d batches; acknowledged through %d, present through %d", round, killAfter, acked, last)
		next = last + 1
	}
}

// startPluginProcess serves store.pebble on dir from this test binary,
// re-executed, through the real handshake, and returns its store and pid.
func startPluginProcess(t testing.TB, dir string) (sdk.Store, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), plugintest.ChildEnv+"="+ID)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Cmd:              cmd,
		StartTimeout:     30 * time.Second,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Error}),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	rp, err := sdk.Remote(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := rp.Describe(ctx); err != nil {
		t.Fatalf("describe: %v", err)
	}
	if diags, err := rp.Configure(ctx, map[string]any{"path": dir}); err != nil || len(diags) != 0 {
		t.Fatalf("configure: %v %v", diags, err)
	}
	if err := rp.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	st, ok := rp.Store()
	if !ok {
		t.Fatal("plugin does not serve a store")
	}
	return st, client.ReattachConfig().Pid
}
