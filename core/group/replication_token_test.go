package group

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

func TestReplicationNodeToken(t *testing.T) {
	good := &ReplicationNodeToken{Peer: "12D3KooWExamplePeer", Addrs: []string{"/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.1/udp/4001/quic-v1"}, Secret: crypto.RandomKey()}
	text := good.Token()
	for _, tc := range []struct {
		name string
		text string
		want error
	}{
		{"round trip", text, nil},
		{"upper case with line breaks", strings.ToUpper(text[:40]) + "\n" + text[40:], nil},
		{"truncated", text[:len(text)-9], ErrTokenChecksum},
		{"changed character", text[:20] + flip(text[20]) + text[21:], ErrTokenChecksum},
		{"an invitation", (&Invitation{Kind: KindMulti, Group: crypto.PublicKey{1}}).Token(), ErrTokenType},
		{"not a token", "hello", ErrTokenPrefix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReplicationNodeToken(tc.text)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Peer != good.Peer || got.Secret != good.Secret || strings.Join(got.Addrs, ",") != strings.Join(good.Addrs, ",") {
				t.Fatalf("round trip changed the token: %v", got)
			}
		})
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		if s := fmt.Sprintf(verb, good); strings.Contains(s, fmt.Sprintf("%x", good.Secret[:4])) || strings.Contains(s, text) {
			t.Errorf("%s reveals the secret: %s", verb, s)
		}
	}
}

func TestReplicationNodeTokenBounds(t *testing.T) {
	many := make([]string, MaxNodeAddrs)
	for i := range many {
		many[i] = "/ip6/2001:db8::" + strings.Repeat("a", 60) + fmt.Sprint(i)
	}
	for _, tc := range []struct {
		name  string
		tok   ReplicationNodeToken
		valid bool
	}{
		{"no peer", ReplicationNodeToken{}, false},
		{"too many addresses", ReplicationNodeToken{Peer: "p", Addrs: make([]string, MaxNodeAddrs+1)}, false},
		{"empty address", ReplicationNodeToken{Peer: "p", Addrs: []string{""}}, false},
		{"long addresses are dropped to fit", ReplicationNodeToken{Peer: "p", Addrs: many}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.tok.Token()
			if !tc.valid {
				if text != "" {
					t.Fatalf("invalid token encoded: %s", text)
				}
				return
			}
			if len(text) > MaxTokenLen {
				t.Fatalf("token of %d characters", len(text))
			}
			got, err := ParseReplicationNodeToken(text)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Addrs) == 0 || len(got.Addrs) >= len(tc.tok.Addrs) {
				t.Fatalf("kept %d of %d addresses", len(got.Addrs), len(tc.tok.Addrs))
			}
		})
	}
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}
