package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sim"
)

// A group of five simulated nodes over 5 ms links: made in one call, a
// message followed to every member, a member removed (a rekey), counters.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sim.New(ctx, sim.Config{Nodes: 5, Link: simnet.Link{Latency: 5 * time.Millisecond}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	g, err := c.NewGroup(ctx, nil) // returns once every member is settled
	if err != nil {
		panic(err)
	}
	msg, err := g.Send(ctx, c.Node(2), []byte("hello, group"))
	if err != nil {
		panic(err)
	}
	if _, err := g.WaitDelivered(ctx, msg.CID); err != nil {
		panic(err)
	}
	fmt.Println("reached", g.Delivery(msg.CID).Reached, "of", len(g.Members()))
	if err := g.Remove(ctx, c.Node(0), c.Node(4)); err != nil {
		panic(err)
	}
	st := g.Stats()
	fmt.Println("members", st.Members, "sent", st.Sent, "deliveries", st.Deliveries)
	fmt.Println("node 2 sent", c.Node(2).Stats().Sent)
	// Output:
	// reached 5 of 5
	// members 4 sent 1 deliveries 5
	// node 2 sent 1
}
