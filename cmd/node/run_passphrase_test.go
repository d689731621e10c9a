package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A keystore sealed by a passphrase: `skein run` says what to do without
// the passphrase, refuses a wrong one, and runs with the right one.
func TestRunWithPassphraseKeystore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping a real node")
	}
	initEnv := testEnv(t)
	env := append(slices.Clone(initEnv), "SKEIN_PLUGINS__NETWORK__CONFIG__LISTEN=[/ip4/127.0.0.1/tcp/0]")
	base := t.TempDir()
	dir := filepath.Join(base, "node")
	good := writeFile(t, base, "pass", "correct horse battery staple\n")
	wrong := writeFile(t, base, "wrong", "incorrect horse\n")
	if r := skein(t, initEnv, "init", "--passphrase-file", good, "--data-dir", dir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no passphrase", nil, "start with --passphrase-file FILE"},
		{"wrong passphrase", []string{"--passphrase-file", wrong}, "wrong keystore passphrase"},
		{"missing file", []string{"--passphrase-file", filepath.Join(base, "nope")}, "passphrase file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := skein(t, env, append([]string{"run", "--data-dir", dir}, tc.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr does not say %q:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
	n := startKill9Node(t, initEnv, dir, "--passphrase-file", good)
	if r := skein(t, env, "id", "--data-dir", dir); r.code != 0 {
		t.Fatalf("id: %s", r.stderr)
	}
	n.stop(t)
}
