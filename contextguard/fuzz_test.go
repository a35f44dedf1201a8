package contextguard

import (
	"context"
	"testing"

	"github.com/taskguard/taskguard/authz"
)

// FuzzEncryptedLoad feeds arbitrary stored contents to the decrypting
// path: it never panics and never returns an entry that was not sealed by
// the task's key.
func FuzzEncryptedLoad(f *testing.F) {
	inner := NewMemoryBackend()
	enc := Encrypted(inner).(*encrypted)
	ctx := context.Background()
	if err := enc.Append(ctx, "t", Entry{Role: "tool", Source: "s", Content: "genuine"}); err != nil {
		f.Fatal(err)
	}
	sealed, err := inner.Load(ctx, "t")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed[0].Content, "tool", int8(0), false)
	f.Add(encPrefix, "", int8(1), true)
	f.Add(encPrefix+"AAAA", "user", int8(2), false)
	f.Add("plain text", "tool", int8(0), false)
	k, err := enc.key("t", false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, content, role string, sens int8, trusted bool) {
		e := Entry{Role: role, Content: content, Sensitivity: authz.Sensitivity(sens), Trusted: trusted, Time: sealed[0].Time}
		if err := decrypt(k, "t", &e); err == nil && content != sealed[0].Content {
			t.Fatalf("accepted a forged entry: %q", content)
		}
	})
}
