package fsguard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/fsguard"
)

func Example() {
	dir, err := os.MkdirTemp("", "workspace")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	dir, _ = filepath.EvalSymlinks(dir) // the real path, as the guard sees it
	_ = os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("buy milk"), 0o600)

	p, err := authz.ParsePolicy("policy.yaml", []byte(`
rules:
  - name: workspace
    tools: ["fs.*"]
    effect: allow
    when: destination.path.within(task.labels.workdir)
`))
	if err != nil {
		panic(err)
	}
	g, err := authz.New(authz.WithPolicy(p))
	if err != nil {
		panic(err)
	}
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent:   authz.Agent{ID: "spiffe://example.org/agent/assistant"},
		Intents: []string{"read"},
		Labels:  map[string]string{"workdir": dir},
	})
	if err != nil {
		panic(err)
	}
	defer task.End()

	root, err := fsguard.OpenTaskRoot(ctx, g)
	if err != nil {
		panic(err)
	}
	defer root.Close()

	data, err := root.ReadFile(ctx, "notes.txt")
	fmt.Printf("%s %v\n", data, err)

	_, err = root.ReadFile(ctx, "../etc/passwd")
	fmt.Println("denied:", errors.Is(err, authz.ErrDenied), "escape:", errors.Is(err, fsguard.ErrEscape))

	taint := task.Taint()
	fmt.Println("untrusted:", taint.Untrusted, "sources:", len(taint.Sources))
	// Output:
	// buy milk <nil>
	// denied: true escape: true
	// untrusted: true sources: 1
}
