package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/skein-p2p/skein/plugins/store/internal/storetest"
	"github.com/skein-p2p/skein/sdk"
)

// The child process protocol: childEnv selects the mode, childDirEnv the
// data directory, childStartEnv the first sequence number to write.
const (
	childEnv      = "SKEIN_STORE_TEST_CHILD"
	childDirEnv   = "SKEIN_STORE_TEST_DIR"
	childStartEnv = "SKEIN_STORE_TEST_START"
)

// opsPerBatch is the number of keys each acknowledged batch writes.
const opsPerBatch = 16

// batchKey and batchValue are the deterministic contents of batch seq.
func batchKey(seq, j int) []byte { return fmt.Appendf(nil, "seq/%08d/%02d", seq, j) }

func batchValue(seq, j int) []byte {
	unit := fmt.Appendf(nil, "<%08d.%02d>", seq, j)
	n := 1 + (seq*7+j*13)%120 // 12 B to 1.4 KiB, so some batches are much larger than others
	return bytes.Repeat(unit, n)
}

// runChild is the re-executed test binary. It returns the exit code.
func runChild(mode string) int {
	dir := os.Getenv(childDirEnv)
	ctx := context.Background()
	p, err := Open(ctx, Config{Path: dir})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	switch mode {
	case "writer":
		seq, err := strconv.Atoi(os.Getenv(childStartEnv))
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: bad start: %v\n", err)
			return 2
		}
		for ; ; seq++ {
			ops := make([]sdk.Op, 0, opsPerBatch+1)
			for j := range opsPerBatch {
				ops = append(ops, sdk.Op{Key: batchKey(seq, j), Value: batchValue(seq, j)})
			}
			ops = append(ops, sdk.Op{Key: []byte("seq-last"), Value: []byte(strconv.Itoa(seq))})
			if err := p.Batch(ctx, ops, true); err != nil {
				fmt.Fprintf(os.Stderr, "child: batch %d: %v\n", seq, err)
				return 2
			}
			// An unsynced put between synced batches: not acknowledged, so
			// not checked, but it puts the kill amid a mix of writes.
			_ = p.Put(ctx, fmt.Appendf(nil, "noise/%08d", seq), batchValue(seq, 0))
			fmt.Fprintf(out, "ack %d\n", seq)
			if err := out.Flush(); err != nil {
				return 3
			}
		}
	case "hold":
		fmt.Fprintln(out, "locked")
		_ = out.Flush()
		_, _ = io.Copy(io.Discard, os.Stdin) // hold the lock until the parent closes stdin
		if err := p.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "child: stop: %v\n", err)
			return 2
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "child: unknown mode %q\n", mode)
		return 2
	}
}

// startChild re-executes the test binary in mode; it is killed at cleanup.
func startChild(t testing.TB, mode, dir string, start int) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir, childStartEnv+"="+strconv.Itoa(start))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("child stderr:\n%s", stderr.String())
		}
	})
	return cmd, bufio.NewScanner(stdout), stdin
}

// TestDurabilityKill9: every batch acknowledged with sync survives SIGKILL of
// the writing process mid-stream, intact, and no batch is half there.
func TestDurabilityKill9(t *testing.T) {
	seed := uint64(0x5ce1)
	if s := os.Getenv("SKEIN_STORE_DURABILITY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("bad SKEIN_STORE_DURABILITY_SEED: %v", err)
		}
		seed = v
	}
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	t.Logf("seed %#x (set SKEIN_STORE_DURABILITY_SEED to replay), %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	next := 0       // first sequence number of the next round
	lastAcked := -1 // highest sequence acknowledged over all rounds

	for round := range rounds {
		killAfter := 5 + rng.IntN(150)
		cmd, lines, _ := startChild(t, "writer", dir, next)
		// The batch in flight at the last kill may have landed; this round
		// then starts after it.
		acked := next - 1
		for n := 0; n < killAfter; n++ {
			if !lines.Scan() {
				t.Fatalf("round %d: child ended early: %v", round, lines.Err())
			}
			acked = parseAck(t, lines.Text(), acked)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		// Acknowledgements already in the pipe count too: the child said so.
		for lines.Scan() {
			acked = parseAck(t, lines.Text(), acked)
		}
		err := cmd.Wait()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child did not die by SIGKILL: %v", round, err)
		}
		lastAcked = acked

		last := verifyBatches(t, dir, lastAcked)
		t.Logf("round %d: killed after %d acks; acknowledged through %d, present through %d", round, killAfter, lastAcked, last)
		next = last + 1
	}
}

func parseAck(t testing.TB, line string, prev int) int {
	t.Helper()
	s, ok := strings.CutPrefix(line, "ack ")
	if !ok {
		t.Fatalf("child said %q, want an ack", line)
	}
	seq, err := strconv.Atoi(s)
	if err != nil || seq != prev+1 {
		t.Fatalf("ack %q after %d: out of sequence", line, prev)
	}
	return seq
}

// verifyBatches reopens the store and checks every batch through acked is
// intact; at most one later batch may be present, and only whole. It returns
// the last batch present.
func verifyBatches(t testing.TB, dir string, acked int) int {
	t.Helper()
	ctx := context.Background()
	p, err := Open(ctx, Config{Path: dir})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer func() {
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	count := map[int]int{}
	for kv, err := range p.Query(ctx, sdk.Query{Prefix: []byte("seq/")}) {
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		var seq, j int
		if _, err := fmt.Sscanf(string(kv.Key), "seq/%08d/%02d", &seq, &j); err != nil {
			t.Fatalf("unexpected key %q", kv.Key)
		}
		if want := batchValue(seq, j); !bytes.Equal(kv.Value, want) {
			t.Fatalf("batch %d key %d: value corrupted (%d bytes, want %d)", seq, j, len(kv.Value), len(want))
		}
		count[seq]++
	}
	last := -1
	for seq, n := range count {
		if n != opsPerBatch {
			t.Fatalf("batch %d is half there: %d of %d keys", seq, n, opsPerBatch)
		}
		last = max(last, seq)
	}
	for seq := 0; seq <= acked; seq++ {
		if count[seq] != opsPerBatch {
			t.Fatalf("acknowledged batch %d lost (%d of %d keys)", seq, count[seq], opsPerBatch)
		}
	}
	if last > acked+1 {
		t.Fatalf("batch %d present, but only %d were acknowledged and one more can be in flight", last, acked)
	}
	if v := storetest.MustGet(t, p, "seq-last"); v != strconv.Itoa(last) {
		t.Fatalf("seq-last = %s, but the last batch present is %d: batch not atomic", v, last)
	}
	return last
}

// TestLockedByOtherProcess: Start fails clearly while another process holds
// the directory, and succeeds once it is gone.
func TestLockedByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, lines, stdin := startChild(t, "hold", dir, 0)
	if !lines.Scan() || lines.Text() != "locked" {
		t.Fatalf("child did not lock the store: %q %v", lines.Text(), lines.Err())
	}
	p, err := Open(context.Background(), Config{Path: dir})
	if err == nil {
		_ = p.Stop(context.Background())
		t.Fatal("opened a store another process holds")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want ErrLocked naming the directory", err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	openAt(t, dir)
}
