package taskguard_test

// TestReadmeSnippets compiles every ```go block of README.md, so the
// README's code keeps working as the API changes.
//
// Wrapping convention (also stated in the README, under "Use"):
//
//   - A block with a package clause is a whole file.
//   - A block whose first code line declares something at top level
//     (func, type, var, const) is a file of declarations.
//   - Any other block is a fragment: the body of
//     func(ctx context.Context, g *authz.Guard, task *authz.Task) error,
//     so it may use the context holding the task, the guard and the task
//     (what "Use" sets up), returns its errors, and defines everything
//     else it uses. A fragment that defines g or task itself with := at
//     its top level (as "Use" does) does not get that parameter.
//
// Imports are added from the package names a block uses (readmeImports).
// Every block becomes its own package of one temporary module that
// requires this repository (and the nested modules the blocks import)
// through replace directives, and a single `go vet` type-checks them all.
// Blocks of ```yaml that hold a policy (a top-level rules key) are parsed
// with authz.ParsePolicy.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/secrets"
)

// readmeImports maps the package names README snippets use to import paths.
var readmeImports = map[string]string{
	"authz":        "github.com/taskguard/taskguard/authz",
	"authztest":    "github.com/taskguard/taskguard/authz/authztest",
	"authzotel":    "github.com/taskguard/taskguard/authz/authzotel",
	"fsguard":      "github.com/taskguard/taskguard/authz/fsguard",
	"httpguard":    "github.com/taskguard/taskguard/authz/httpguard",
	"identity":     "github.com/taskguard/taskguard/authz/identity",
	"redisstore":   "github.com/taskguard/taskguard/authz/redisstore",
	"contextguard": "github.com/taskguard/taskguard/contextguard",
	"redisbackend": "github.com/taskguard/taskguard/contextguard/redisbackend",
	"secrets":      "github.com/taskguard/taskguard/secrets",
	"redis":        "github.com/redis/go-redis/v9",
	"otel":         "go.opentelemetry.io/otel",
	"require":      "github.com/stretchr/testify/require",
	"assert":       "github.com/stretchr/testify/assert",
	"context":      "context",
	"ed25519":      "crypto/ed25519",
	"rand":         "crypto/rand",
	"errors":       "errors",
	"fmt":          "fmt",
	"io":           "io",
	"json":         "encoding/json",
	"log":          "log",
	"slog":         "log/slog",
	"http":         "net/http",
	"os":           "os",
	"strings":      "strings",
	"testing":      "testing",
	"time":         "time",
}

// readmePath is README.md's absolute path, for the line directives that
// make compiler errors point into it.
var readmePath = func() string {
	p, err := filepath.Abs("README.md")
	if err != nil {
		return "README.md"
	}
	return p
}()

// snippet is one fenced block of README.md.
type snippet struct {
	lang string
	line int // line of the opening fence
	code string
}

func readmeSnippets(t *testing.T) []snippet {
	t.Helper()
	f, err := os.Open("README.md")
	require.NoError(t, err)
	defer f.Close()
	var out []snippet
	var cur *snippet
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```") && len(line) > 3:
			cur = &snippet{lang: strings.TrimSpace(line[3:]), line: n}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		}
	}
	require.NoError(t, sc.Err())
	require.Nil(t, cur, "README.md: unterminated code block")
	return out
}

var declStart = regexp.MustCompile(`^(func|type|var|const)\b`)

// goFile turns a README block into a Go source file of package pkg.
func goFile(s snippet, pkg string) (string, error) {
	code := s.code
	kind := "fragment"
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		if strings.HasPrefix(l, "package ") {
			kind = "file"
		} else if declStart.MatchString(l) {
			kind = "decls"
		}
		break
	}
	var body string
	switch kind {
	case "file":
		return code, nil
	case "decls":
		body = code
	default:
		// The guard and the task are parameters unless the block makes its
		// own at its top level (as "Use" does).
		params := "ctx context.Context"
		own := topLevelDefines(code)
		for _, p := range []string{"g *authz.Guard", "task *authz.Task"} {
			if name, _, _ := strings.Cut(p, " "); !own[name] {
				params += ", " + p
			}
		}
		body = "func snippet(" + params + ") error {\n" + code + "return nil\n}\n"
	}
	src := fmt.Sprintf("package %s\n\n", pkg)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src+body, parser.SkipObjectResolution)
	if err != nil {
		return "", fmt.Errorf("README.md:%d: %v", s.line, err)
	}
	used := map[string]bool{}
	if kind == "fragment" {
		used["context"], used["authz"] = true, true
	}
	// A package name is an identifier before a dot that the block does not
	// declare itself; the parser does not resolve objects here, so collect
	// the block's own names first.
	declared := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						declared[id.Name] = true
					}
				}
			}
		case *ast.RangeStmt:
			if n.Tok == token.DEFINE {
				for _, e := range []ast.Expr{n.Key, n.Value} {
					if id, ok := e.(*ast.Ident); ok {
						declared[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				declared[id.Name] = true
			}
		case *ast.Field:
			for _, id := range n.Names {
				declared[id.Name] = true
			}
		case *ast.FuncDecl:
			declared[n.Name.Name] = true
		case *ast.TypeSpec:
			declared[n.Name.Name] = true
		}
		return true
	})
	if kind == "fragment" {
		declared["ctx"], declared["g"], declared["task"] = true, true, true
	}
	var unknown []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok || declared[id.Name] {
			return true
		}
		if _, known := readmeImports[id.Name]; known {
			used[id.Name] = true
		} else if !slices.Contains(unknown, id.Name) {
			unknown = append(unknown, id.Name)
		}
		return true
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("README.md:%d: the block uses %v, which it does not define: define it in the block, or add its package to readmeImports", s.line, unknown)
	}
	var b strings.Builder
	b.WriteString(src)
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "import %q\n", readmeImports[n])
	}
	// A line directive makes compiler errors point into README.md: the
	// block starts on the line after its fence, where a fragment's
	// wrapper line sits on the fence's own line.
	first := s.line + 1
	if kind == "fragment" {
		first = s.line
	}
	fmt.Fprintf(&b, "\n//line %s:%d\n", readmePath, first)
	b.WriteString(body)
	return b.String(), nil
}

// topLevelDefines returns the names a fragment defines with := outside any
// nested block.
func topLevelDefines(code string) map[string]bool {
	own := map[string]bool{}
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\nfunc f() {\n"+code+"}\n", parser.SkipObjectResolution)
	if err != nil {
		return own
	}
	for _, st := range f.Decls[0].(*ast.FuncDecl).Body.List {
		if as, ok := st.(*ast.AssignStmt); ok && as.Tok == token.DEFINE {
			for _, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); ok {
					own[id.Name] = true
				}
			}
		}
	}
	return own
}

// nestedModules returns the module path and directory of every go.mod below
// the repository root, except examples and test data.
func nestedModules(t *testing.T, root string) map[string]string {
	t.Helper()
	mods := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "examples" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" || filepath.Dir(path) == root {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(src), "\n") {
			if mod, ok := strings.CutPrefix(l, "module "); ok {
				mods[strings.TrimSpace(mod)] = filepath.Dir(path)
			}
		}
		return nil
	})
	require.NoError(t, err)
	return mods
}

func TestReadmeSnippets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's snippets in a temporary module (go vet)")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	snippets := readmeSnippets(t)
	tmp := t.TempDir()
	var gos int
	imports := map[string]bool{}
	for _, s := range snippets {
		switch s.lang {
		case "go":
			gos++
			pkg := fmt.Sprintf("snippet%d", s.line)
			src, err := goFile(s, pkg)
			if !assert.NoError(t, err) {
				continue
			}
			for _, m := range regexp.MustCompile(`(?m)^import "([^"]+)"$`).FindAllStringSubmatch(src, -1) {
				imports[m[1]] = true
			}
			require.NoError(t, os.MkdirAll(filepath.Join(tmp, pkg), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(tmp, pkg, "snippet.go"), []byte(src), 0o600))
		case "yaml":
			if !regexp.MustCompile(`(?m)^rules:`).MatchString(s.code) {
				continue
			}
			_, err := authz.ParsePolicy(fmt.Sprintf("README.md:%d", s.line), []byte(s.code))
			assert.NoError(t, err, "README.md:%d: the policy block must load", s.line)
		}
	}
	require.NotZero(t, gos, "README.md has go blocks")

	// One module requiring this repository and the nested modules the
	// snippets import, each through a replace to its directory.
	mods := nestedModules(t, root)
	var gomod, gosum bytes.Buffer
	gomod.WriteString("module readmesnippets\n\ngo 1.26\n\nrequire github.com/taskguard/taskguard v0.0.0\n\nreplace github.com/taskguard/taskguard => " + root + "\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	gosum.Write(sum)
	for mod, dir := range mods {
		needed := false
		for imp := range imports {
			if imp == mod || strings.HasPrefix(imp, mod+"/") {
				needed = true
			}
		}
		if !needed {
			continue
		}
		fmt.Fprintf(&gomod, "\nrequire %s v0.0.0\n\nreplace %s => %s\n", mod, mod, dir)
		if sum, err := os.ReadFile(filepath.Join(dir, "go.sum")); err == nil {
			gosum.Write(sum)
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "go.mod"), gomod.Bytes(), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "go.sum"), gosum.Bytes(), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "vet", "-unreachable=false", "./...")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "README snippets do not compile:\n%s", out)
}

// TestReadmeLeaseCombination runs what the README's "Use" and "Secrets"
// snippets combine to: the README's policy, the task of "Use" (clearance
// Internal) and a lease of the secret as the Secrets section classifies
// it. Keep the task spec and the source in step with the README.
func TestReadmeLeaseCombination(t *testing.T) {
	var policy *authz.Policy
	for _, s := range readmeSnippets(t) {
		if s.lang == "yaml" && strings.HasPrefix(s.code, "rules:") {
			p, err := authz.ParsePolicy("README.md", []byte(s.code))
			require.NoError(t, err)
			policy = p
			break
		}
	}
	require.NotNil(t, policy, "the README has a policy block")
	g, err := authz.New(authz.WithPolicy(policy))
	require.NoError(t, err)
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:     authz.Agent{ID: "spiffe://corp/agent/researcher"},
		Intents:   []string{"read", "search", "secret.read"},
		Tools:     []string{"http.*", "secrets.lease"},
		Clearance: authz.Internal,
		TTL:       10 * time.Minute,
		Labels:    map[string]string{"workdir": "/workspace"},
	})
	require.NoError(t, err)
	defer task.End()
	token := "ghp_readmeExampleToken0123456789"
	broker, err := secrets.NewBroker(g, secrets.StaticClassified(
		map[string]string{"github-token": token},
		map[string]authz.Sensitivity{"github-token": authz.Internal}),
		secrets.WithMaxTTL(5*time.Minute))
	require.NoError(t, err)
	defer broker.Close()
	lease, err := broker.Lease(ctx, "github-token", secrets.TTL(time.Minute), secrets.Audience("api.github.com"))
	require.NoError(t, err)
	require.NoError(t, lease.Use(func(v []byte) error {
		assert.Equal(t, token, string(v))
		return nil
	}))

	// The same secret unclassified (Static: Confidential) is refused, and
	// the error says how to fix it.
	b2, err := secrets.NewBroker(g, secrets.Static(map[string]string{"github-token": token}))
	require.NoError(t, err)
	defer b2.Close()
	_, err = b2.Lease(ctx, "github-token")
	assert.ErrorContains(t, err, "begin the task with Clearance: authz.Confidential (or higher), or classify the secret lower")
}
