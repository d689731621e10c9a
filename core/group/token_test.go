package group

import (
	"errors"
	"strings"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

func testInvitation(t testing.TB) *Invitation {
	t.Helper()
	gk, _ := crypto.GenerateSigningKey()
	inv := &Invitation{Kind: KindMulti, Group: gk.Public(), Epoch: EpochID{1, 2, 3}, Secret: crypto.RandomKey(), InviteSeed: crypto.RandomKey()}
	return inv
}

func TestInvitationRoundTrip(t *testing.T) {
	inv := testInvitation(t)
	acct, _ := crypto.GenerateSigningKey()
	accInv := &Invitation{Kind: KindAccount, Group: acct.Public(), Secret: crypto.RandomKey(), InviteSeed: crypto.RandomKey(), GroupSeed: acct.Seed()}
	for _, tc := range []struct {
		name string
		inv  *Invitation
		text func(string) string
	}{
		{"plain", inv, func(s string) string { return s }},
		{"upper case (QR form)", inv, strings.ToUpper},
		{"line breaks and spaces from a copy", inv, func(s string) string { return " " + s[:30] + "\n" + s[30:60] + " \t" + s[60:] + "\n" }},
		{"account group with seed", accInv, func(s string) string { return s }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInvitation(tc.text(tc.inv.Token()))
			if err != nil {
				t.Fatal(err)
			}
			a, _ := got.MarshalBinary()
			b, _ := tc.inv.MarshalBinary()
			if string(a) != string(b) {
				t.Fatal("round trip changed the invitation")
			}
		})
	}
	// 160 bytes of keys (group, epoch secret, invitation seed, replication
	// key) and the epoch id: 249 characters, one QR code of version 10.
	if len(inv.Token()) > 250 {
		t.Errorf("invitation token is %d characters", len(inv.Token()))
	}
	if s := inv.String(); strings.Contains(inv.Token(), s) || strings.Contains(s, "skein1") {
		t.Errorf("String reveals the token: %s", s)
	}
}

func TestTokenErrors(t *testing.T) {
	inv := testInvitation(t)
	tok := inv.Token()
	id := newIdentity(t)
	ct, err := id.ContactToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	badKind := *inv
	badKind.Kind = 9
	p, _ := badKind.MarshalBinary()
	cases := []struct {
		name string
		text string
		want error
	}{
		{"empty", "", ErrTokenPrefix},
		{"wrong prefix", "skein2-" + tok[len(TokenPrefix):], ErrTokenPrefix},
		{"prefix cut off", tok[len(TokenPrefix):], ErrTokenPrefix},
		{"invalid character", tok[:20] + "1" + tok[21:], ErrTokenEncoding},
		{"truncated by half", tok[:len(tok)/2], ErrTokenTruncated},
		{"truncated by one character", tok[:len(tok)-1], ErrTokenTruncated},
		{"one character changed", flip(tok, 40), ErrTokenChecksum},
		{"checksum changed", flip(tok, len(tok)-1), ErrTokenChecksum},
		{"extended", tok + "aaaaaaaa", ErrTokenChecksum},
		{"contact token given", ct.Token(), ErrTokenType},
		{"unknown group kind", encodeToken(tokenInvitation, p), ErrTokenMalformed},
		{"trailing payload", encodeToken(tokenInvitation, append(mustMarshal(t, inv), 0)), ErrTokenMalformed},
		{"too long", TokenPrefix + strings.Repeat("a", MaxTokenLen), ErrTokenMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInvitation(tc.text)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), tok[len(TokenPrefix):len(TokenPrefix)+16]) {
				t.Fatalf("error repeats the token: %v", err)
			}
		})
	}
}

func TestContactTokenAndRequest(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ct, err := a.ContactToken("Alice ✓")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseContactToken(ct.Token())
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Alice ✓" || !got.Account.Equal(a.AccountKey()) {
		t.Fatalf("parsed %+v", got)
	}
	forged := *ct
	forged.Name = "Mallory"
	if _, err := ParseContactToken(forged.Token()); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("renamed token: %v, want ErrTokenMalformed (bad signature)", err)
	}
	if _, err := a.ContactToken("bad\x00name"); err == nil {
		t.Fatal("control character accepted in a name")
	}
	req, g, err := RequestContact(ctxT(t), b, got, "Bob", newNet().storage())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	q, err := ParseContactRequest(req.Token())
	if err != nil {
		t.Fatal(err)
	}
	if !q.From.Equal(b.AccountKey()) || !q.To.Equal(a.AccountKey()) || q.Name != "Bob" {
		t.Fatalf("parsed request %+v", q)
	}
	if _, err := ParseContactToken(req.Token()); !errors.Is(err, ErrTokenType) {
		t.Fatalf("request parsed as a token: %v", err)
	}
}

func TestRenderQR(t *testing.T) {
	inv := testInvitation(t)
	q, err := RenderQR(inv.Token())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(q, "\n"), "\n")
	width := len([]rune(lines[0]))
	if width < 21+2*qrQuietZone || len(lines) != (width+1)/2 {
		t.Fatalf("%d lines of %d columns: not a square code", len(lines), width)
	}
	for i, l := range lines {
		if len([]rune(l)) != width {
			t.Fatalf("line %d has %d columns, want %d", i, len([]rune(l)), width)
		}
	}
	if !strings.ContainsRune(q, ' ') || !strings.ContainsRune(q, '█') {
		t.Fatal("no dark or no light modules")
	}
	other, _ := RenderQR(testInvitation(t).Token())
	if other == q {
		t.Fatal("two tokens render the same code")
	}
}
