package queue

import (
	"context"
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		push     [][]int
		wantOK   []bool
		wantRecv []int
	}{
		{"unbounded keeps order", 0, [][]int{{1, 2}, {3}, {4, 5, 6}}, []bool{true, true, true}, []int{1, 2, 3, 4, 5, 6}},
		{"bounded refuses what does not fit", 3, [][]int{{1, 2}, {3, 4}, {3}}, []bool{true, false, true}, []int{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := New[int](tc.max)
			for i, vs := range tc.push {
				if got := q.Push(vs...); got != tc.wantOK[i] {
					t.Fatalf("push %d: got %v, want %v", i, got, tc.wantOK[i])
				}
			}
			out := make(chan int)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go q.Forward(ctx, out)
			for i, want := range tc.wantRecv {
				select {
				case got := <-out:
					if got != want {
						t.Fatalf("value %d: got %d, want %d", i, got, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("value %d not forwarded", i)
				}
			}
		})
	}
}

func TestStopEndsForwardAndRefusesPush(t *testing.T) {
	q := New[int](0)
	ended := make(chan struct{})
	go func() {
		q.Forward(context.Background(), make(chan int))
		close(ended)
	}()
	q.Stop()
	q.Stop()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("Forward did not end on Stop")
	}
	if q.Push(1) {
		t.Fatal("Push after Stop succeeded")
	}
}
