package ipfs

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A wanted peer whose connection comes and goes while a redial of it is
// running is reported lost when nothing is scheduled for it (the dial is
// running); the end of that dial must then schedule the next one, whatever
// the dial returned. Before, a dial that returned success for a
// connection already lost left the peer never redialled again.
func TestRedialAfterConnectionLostDuringDial(t *testing.T) {
	tests := []struct {
		name     string
		dialErr  error
		connect  bool // the peer is really connected when the dial ends
		schedule bool
	}{
		{"dial succeeded, connection already lost", nil, false, true},
		{"dial failed", errors.New("refused"), false, true},
		{"dial succeeded, connected", nil, true, false},
		{"dial failed, connected by the far side", errors.New("simultaneous"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			other, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			r := newRedialer(h, newGater(), slog.New(slog.DiscardHandler), 2*time.Second, 8)
			addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
			r.want(peer.AddrInfo{ID: other.ID(), Addrs: []ma.Multiaddr{addr}}, true, false)

			// dispatch starts a dial...
			r.mu.Lock()
			p := r.peers[other.ID()]
			p.next, p.dialing = time.Time{}, true
			r.mu.Unlock()
			// ...during which the connection comes up and goes.
			r.connectedness(event.EvtPeerConnectednessChanged{Peer: other.ID(), Connectedness: network.Connected})
			r.connectedness(event.EvtPeerConnectednessChanged{Peer: other.ID(), Connectedness: network.NotConnected})
			r.mu.Lock()
			if !p.next.IsZero() {
				t.Fatal("a loss during a dial scheduled a second dial")
			}
			r.mu.Unlock()
			if tt.connect {
				if err := h.Connect(t.Context(), peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}); err != nil {
					t.Fatal(err)
				}
			}

			r.dialed(other.ID(), time.Now(), tt.dialErr)
			r.mu.Lock()
			defer r.mu.Unlock()
			if p.dialing {
				t.Fatal("still dialing after the dial ended")
			}
			if scheduled := !p.next.IsZero(); scheduled != tt.schedule {
				t.Fatalf("next dial scheduled = %v, want %v", scheduled, tt.schedule)
			}
			if connected := !p.connectedAt.IsZero(); connected != tt.connect {
				t.Fatalf("recorded connected = %v, want %v", connected, tt.connect)
			}
		})
	}
}
