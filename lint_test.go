package runnel_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// House rules, checked like any other test (see STYLE.md): the engine core
// stays a single-threaded state machine without wall-clock reads, user
// data never goes through `any` in operator signatures, and storage and
// Kafka libraries stay at the edges.

func parseDir(t *testing.T, dir string, tests bool) map[string]*ast.File {
	t.Helper()
	files := map[string]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || (!tests && strings.HasSuffix(path, "_test.go")) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestLintEngineIsPure(t *testing.T) {
	for path, f := range parseDir(t, "internal/engine", false) {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: the engine starts no goroutines (the runner does)", path)
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && (n.Sel.Name == "Now" || n.Sel.Name == "Sleep" || n.Sel.Name == "After") {
					t.Errorf("%s: the engine reads time only through its Clock (found time.%s)", path, n.Sel.Name)
				}
			}
			return true
		})
	}
}

func TestLintNoAnyInOperators(t *testing.T) {
	for _, dir := range []string{"op", "window"} {
		for path, f := range parseDir(t, dir, false) {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || !fn.Name.IsExported() || fn.Recv != nil {
					continue
				}
				// Type parameter constraints may say any; parameters and
				// results may not.
				sig := &ast.FuncType{Params: fn.Type.Params, Results: fn.Type.Results}
				ast.Inspect(sig, func(n ast.Node) bool {
					switch n := n.(type) {
					case *ast.Ident:
						if n.Name == "any" {
							t.Errorf("%s: %s takes or returns `any`; operators are typed", path, fn.Name.Name)
						}
					case *ast.InterfaceType:
						if n.Methods == nil || len(n.Methods.List) == 0 {
							t.Errorf("%s: %s takes or returns interface{}; operators are typed", path, fn.Name.Name)
						}
					}
					return true
				})
			}
		}
	}
}

func TestLintImportsAtTheEdges(t *testing.T) {
	allowed := map[string][]string{
		"modernc.org/sqlite":       {"recovery/", "recovery_test.go", "bench/"},
		"github.com/twmb/franz-go": {"connector/kafka/", "bench/"},
	}
	for path, f := range parseDir(t, ".", true) {
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for lib, where := range allowed {
				if !strings.HasPrefix(p, lib) {
					continue
				}
				ok := false
				for _, w := range where {
					ok = ok || strings.HasPrefix(filepath.ToSlash(path), w)
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may", path, p, where)
				}
			}
		}
	}
}
