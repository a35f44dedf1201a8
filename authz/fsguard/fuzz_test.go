package fsguard

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzNames checks the lexical confinement of names: a name is either
// refused, or maps to a path relative to the root that stays inside it,
// whose join with the root is the destination the policy sees. It never
// panics.
func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"notes.txt", "sub/inner.txt", "sub/../notes.txt", ".", "./", "..", "../x", "a/../../x",
		"/ws/notes.txt", "/ws", "/ws/", "/ws2/x", "/link/ws/a", "/link/ws/../ws/a", "/etc/passwd",
		"", "a\x00b", "//ws/a", "a//b/", "...", "..a", "a/..", "\\..\\x",
	} {
		f.Add(s)
	}
	r := &Root{dir: "/ws", alias: "/link/ws"}
	f.Fuzz(func(t *testing.T, name string) {
		rel, abs, err := r.local(name)
		if err != nil {
			if rel != "" || abs != "" {
				t.Fatalf("local(%q) returned %q, %q with error %v", name, rel, abs, err)
			}
			return
		}
		if strings.IndexByte(name, 0) >= 0 || name == "" {
			t.Fatalf("local(%q) accepted an invalid name", name)
		}
		if !filepath.IsLocal(rel) {
			t.Fatalf("local(%q) = %q, not local", name, rel)
		}
		if abs != filepath.Join(r.dir, rel) {
			t.Fatalf("local(%q): abs %q is not the root joined with %q", name, abs, rel)
		}
		if back, err := filepath.Rel(r.dir, abs); err != nil || back != rel {
			t.Fatalf("local(%q): abs %q is not %q under the root (%q, %v)", name, abs, rel, back, err)
		}
	})
}
