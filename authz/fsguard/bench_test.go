package fsguard

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// BenchmarkReadFile reads a 1 KiB file with os.ReadFile and through a
// guarded Root (authorization, symlink resolution, os.Root open, taint),
// side by side.
func BenchmarkReadFile(b *testing.B) {
	dir, err := filepath.EvalSymlinks(b.TempDir())
	require.NoError(b, err)
	data := bytes.Repeat([]byte("x"), 1024)
	file := filepath.Join(dir, "small.txt")
	require.NoError(b, os.WriteFile(file, data, 0o600))
	p, err := authz.ParsePolicy("bench.yaml", []byte(workspacePolicy))
	require.NoError(b, err)
	g, err := authz.New(authz.WithPolicy(p))
	require.NoError(b, err)
	ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{
		Agent: authz.Agent{ID: "bench"}, Labels: map[string]string{"workdir": dir},
	})
	require.NoError(b, err)
	defer task.End()
	r, err := OpenRoot(dir, g)
	require.NoError(b, err)
	defer r.Close()

	b.Run("os", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := os.ReadFile(file)
			if err != nil || len(got) != len(data) {
				b.Fatal(err)
			}
		}
	})
	b.Run("os-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := os.ReadFile(file); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("fsguard-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.ReadFile(ctx, "small.txt"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("fsguard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := r.ReadFile(ctx, "small.txt")
			if err != nil || len(got) != len(data) {
				b.Fatal(err)
			}
		}
	})
}
