package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDeviceLinkThroughTheBinary links a second device with the built
// skein binary, each node a real `skein run` process on loopback: init
// --link joins the account's group with its history, both devices list
// each other, and the laptop removes the phone. Bad tokens fail init with
// a clear message before anything is written.
func TestDeviceLinkThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the device link through the binary")
	}
	env := testEnv(t)
	// init --link runs a node: on loopback, on a free port.
	linkEnv := append(slices.Clone(env), "SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]")
	root := t.TempDir()
	laptopDir, phoneDir := filepath.Join(root, "laptop"), filepath.Join(root, "phone")
	must := func(r result, what string) string {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	must(skein(t, env, "init", "--data-dir", laptopDir), "init laptop")
	laptop := startKill9Node(t, env, laptopDir)
	must(skein(t, env, "group", "create", "g", "--data-dir", laptopDir), "group create")
	must(skein(t, env, "send", "g", "hello from before", "--data-dir", laptopDir), "send")
	must(skein(t, env, "device", "rename", "laptop", "--data-dir", laptopDir), "rename")

	var link struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	out := must(skein(t, env, "device", "link", "--json", "--data-dir", laptopDir), "device link")
	if err := json.Unmarshal([]byte(out), &link); err != nil || !strings.HasPrefix(link.Token, "skein1-") {
		t.Fatalf("device link --json: %q (%v)", out, err)
	}

	// Bad tokens: refused before the data directory is written.
	for _, tc := range []struct{ name, token, want string }{
		{"garbage", "skein1-abc", "link token"},
		{"an invitation", mustInviteToken(t, env, laptopDir), "this is an invitation"},
	} {
		dir := filepath.Join(root, "bad-"+strings.ReplaceAll(tc.name, " ", "-"))
		r := skein(t, linkEnv, "init", "--data-dir", dir, "--link", tc.token)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("init --link with %s: exit %d, stderr %q; want an error saying %q", tc.name, r.code, r.stderr, tc.want)
		}
		if _, err := filepath.Glob(filepath.Join(dir, "*")); err == nil {
			if m, _ := filepath.Glob(filepath.Join(dir, "skein.yaml")); len(m) > 0 {
				t.Fatalf("init --link with %s wrote %s", tc.name, m[0])
			}
		}
	}

	r := skein(t, linkEnv, "init", "--data-dir", phoneDir, "--link", link.Token, "--name", "phone", "--json")
	must(r, "init --link")
	var last linkProgress
	steps := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("init --link --json line %q: %v", line, err)
		}
		steps++
	}
	if last.Step != "done" || last.Messages != 1 || steps < 3 {
		t.Fatalf("init --link progress ended with %+v after %d steps", last, steps)
	}

	// The token was used: a third node is refused.
	r = skein(t, linkEnv, "init", "--data-dir", filepath.Join(root, "third"), "--link", link.Token)
	if r.code == 0 || !strings.Contains(r.stderr, "already used") {
		t.Fatalf("reused token: exit %d, stderr %q", r.code, r.stderr)
	}

	phone := startKill9Node(t, env, phoneDir)
	msgs := must(skein(t, env, "messages", "g", "--data-dir", phoneDir), "messages on the phone")
	if !strings.Contains(msgs, "hello from before") {
		t.Fatalf("the phone's history: %q", msgs)
	}
	must(skein(t, env, "send", "g", "hello from the phone", "--data-dir", phoneDir), "send from the phone")
	waitUntil(t, "the laptop reads the phone", func() bool {
		r := skein(t, env, "messages", "g", "--data-dir", laptopDir)
		return r.code == 0 && strings.Contains(r.stdout, "hello from the phone")
	})
	waitUntil(t, "the laptop lists both devices", func() bool {
		r := skein(t, env, "device", "list", "--data-dir", laptopDir)
		return r.code == 0 && strings.Contains(r.stdout, "laptop (this)") && strings.Contains(r.stdout, "phone")
	})
	out = must(skein(t, env, "device", "remove", "phone", "--data-dir", laptopDir), "device remove")
	if !strings.Contains(out, "removed from 2 groups") {
		t.Fatalf("device remove: %q", out)
	}
	waitUntil(t, "the phone learns its removal", func() bool {
		r := skein(t, env, "device", "list", "--data-dir", phoneDir)
		return r.code == 0 && strings.Contains(r.stdout, "(this) (removed)")
	})
	waitUntil(t, "the phone learns its removal from g", func() bool {
		r := skein(t, env, "group", "members", "g", "--data-dir", phoneDir)
		return r.code == 0 && strings.Contains(r.stdout, "1 device  (you)")
	})
	r = skein(t, env, "send", "g", "after removal", "--data-dir", phoneDir)
	if r.code == 0 || !strings.Contains(r.stderr, "removed") {
		t.Fatalf("the removed phone sends: exit %d, stderr %q", r.code, r.stderr)
	}
	phone.stop(t)
	laptop.stop(t)
}

func mustInviteToken(t *testing.T, env []string, dir string) string {
	t.Helper()
	r := skein(t, env, "group", "invite", "g", "--data-dir", dir)
	if r.code != 0 {
		t.Fatalf("invite: %s", r.stderr)
	}
	return strings.TrimSpace(strings.Split(r.stdout, "\n")[0])
}
