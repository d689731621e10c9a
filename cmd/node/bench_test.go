package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/pluginhost"
)

// BenchmarkNodeStartStop measures starting and stopping a node with one
// store.memory plugin: linked in, and out of process through the skein
// binary (sha256 of the binary, launch, handshake, Describe, Configure,
// Start, then Stop).
func BenchmarkNodeStartStop(b *testing.B) {
	sum, err := pluginhost.FileSHA256(skeinBin)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"linked", "process"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "skein.yaml")
			yaml := "node:\n  data_dir: data\nplugins:\n  store:\n    id: store.memory\n    mode: " + mode + "\n"
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				b.Fatal(err)
			}
			cfg, err := config.Load(config.WithFile(path))
			if err != nil {
				b.Fatal(err)
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx := context.Background()
			for b.Loop() {
				n, err := node.New(cfg, node.WithLogger(logger), node.WithSelfCommand(skeinBin, sum))
				if err != nil {
					b.Fatal(err)
				}
				if err := n.Start(ctx); err != nil {
					b.Fatal(err)
				}
				if err := n.Stop(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSendThroughRunningNode measures Messages.Send through the
// client API of a running `skein run` (store and network plugins out of
// process, one synced write: the entry's block, its index and the readable
// local copy in one store batch; the network's blockstore gets the block
// after the send is acknowledged): the time until a send is acknowledged, and so
// durable. It reports p50 and p90 in ms.
func BenchmarkSendThroughRunningNode(b *testing.B) {
	cl, g := benchNode(b)
	ctx := context.Background()
	body := make([]byte, 200)
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := cl.Messages.Send(ctx, &apiv1.SendRequest{Group: g.GetId(), Body: body}); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "p90-ms")
}

// BenchmarkConcurrentSendsThroughRunningNode is
// BenchmarkSendThroughRunningNode with 16 clients sending at once (each
// send acknowledged, and so durable), as a group chat's busy node sees:
// it reports acknowledged messages per second.
func BenchmarkConcurrentSendsThroughRunningNode(b *testing.B) {
	const senders = 16
	cl, g := benchNode(b)
	ctx := context.Background()
	body := make([]byte, 200)
	t0 := time.Now()
	b.SetParallelism((senders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cl.Messages.Send(ctx, &apiv1.SendRequest{Group: g.GetId(), Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
}

// BenchmarkStreamedSendsThroughRunningNode is
// BenchmarkSendThroughRunningNode for one client that pipelines its sends
// over Messages.SendStream (client.Sender, apiv1.MaxSendsInFlight in
// flight): it reports acknowledged (durable) messages per second.
func BenchmarkStreamedSendsThroughRunningNode(b *testing.B) {
	cl, g := benchNode(b)
	ctx := context.Background()
	s, err := cl.NewSender(ctx)
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 200)
	pending := make(chan *client.PendingSend, apiv1.MaxSendsInFlight)
	acked := make(chan error, 1)
	go func() {
		for p := range pending {
			if _, err := p.Wait(ctx); err != nil {
				acked <- err
				for range pending {
				}
				return
			}
		}
		acked <- nil
	}()
	t0 := time.Now()
	for b.Loop() {
		p, err := s.Send(ctx, g.GetId(), body)
		if err != nil {
			b.Fatal(err)
		}
		pending <- p
	}
	close(pending)
	if err := <-acked; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// benchNode starts a `skein run` made by `skein init` (stopped at the end
// of the benchmark) and creates a group on it through a client.
func benchNode(b *testing.B) (*client.Client, *apiv1.GroupInfo) {
	b.Helper()
	env := testEnv(b)
	dir := filepath.Join(b.TempDir(), "node")
	if r := skein(b, env, "init", "--data-dir", dir); r.code != 0 {
		b.Fatalf("init: %s", r.stderr)
	}
	n := startKill9Node(b, env, dir)
	b.Cleanup(func() { n.stop(b) })
	cl, err := client.Dial(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	g, err := cl.Groups.Create(context.Background(), &apiv1.CreateGroupRequest{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return cl, g
}
