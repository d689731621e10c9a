package skein_test

import (
	"bufio"
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goList runs `go list` with args and returns its non-empty output lines.
func goList(t testing.TB, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestDependencyBoundaries enforces the layering of ARCHITECTURE.md: the core
// has no networking, only core/pluginhost talks go-plugin, and the sdk stays
// free of libp2p and boxo so plugin authors (and gomobile) do not inherit them.
func TestDependencyBoundaries(t *testing.T) {
	const mod = "github.com/skein-p2p/skein/"
	networking := []string{"github.com/libp2p/", "github.com/ipfs/boxo"}
	goPlugin := "github.com/hashicorp/go-plugin"

	pkgs := goList(t, "./...")
	checked := 0
	for _, pkg := range pkgs {
		rel := strings.TrimPrefix(pkg, mod)
		inCore := strings.HasPrefix(rel, "core/")
		inSDK := rel == "sdk" || strings.HasPrefix(rel, "sdk/")
		if !inCore && !inSDK {
			continue
		}
		checked++
		for _, dep := range goList(t, "-deps", pkg) {
			for _, banned := range networking {
				if strings.HasPrefix(dep, banned) {
					t.Errorf("%s depends on %s: core/ and sdk/ must not import libp2p or boxo", rel, dep)
				}
			}
		}
		// go-plugin reaches core/node through core/pluginhost and sdk; what
		// the rule forbids is talking to it directly anywhere else in core.
		if inCore && rel != "core/pluginhost" {
			for _, imp := range goList(t, "-f", `{{join .Imports "\n"}}`, pkg) {
				if imp == goPlugin || strings.HasPrefix(imp, goPlugin+"/") {
					t.Errorf("%s imports %s: only core/pluginhost may import go-plugin", rel, imp)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no core/ or sdk/ packages found: the boundary check checked nothing")
	}
}

// TestEveryPackageHasDocComment fails for a package whose non-test files carry
// no package doc comment.
func TestEveryPackageHasDocComment(t *testing.T) {
	dirs := goList(t, "-f", "{{.Dir}}", "./...")
	if len(dirs) == 0 {
		t.Fatal("no packages found")
	}
	for _, dir := range dirs {
		fset := token.NewFileSet()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		documented := false
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parse %s: %v", name, err)
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = true
				break
			}
		}
		if !documented {
			t.Errorf("package in %s has no doc comment: add a doc.go", dir)
		}
	}
}
