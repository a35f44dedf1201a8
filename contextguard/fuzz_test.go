package contextguard

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/taskguard/taskguard/authz"
)

// FuzzEncryptedLoad feeds arbitrary stored contents to the decrypting
// path: it never panics and never returns an entry that was not sealed by
// the task's key for that position.
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
	f.Add(sealed[0].Content, "tool", int8(0), false, uint64(0))
	f.Add(sealed[0].Content, "tool", int8(0), false, uint64(1))
	f.Add(sealed[0].Content[:len(sealed[0].Content)-2], "tool", int8(0), false, uint64(0))
	f.Add(encPrefix, "", int8(1), true, uint64(0))
	f.Add(encPrefix+"0:AAAA", "user", int8(2), false, uint64(0))
	f.Add(encPrefix+"00:AAAA", "user", int8(2), false, uint64(0))
	f.Add(encPrefix+"18446744073709551615:", "user", int8(2), false, uint64(1<<64-1))
	f.Add("tgenc1:AAAA", "tool", int8(0), false, uint64(0))
	f.Add("plain text", "tool", int8(0), false, uint64(0))
	k, err := enc.key("t", false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, content, role string, sens int8, trusted bool, seq uint64) {
		e := Entry{Role: role, Content: content, Sensitivity: authz.Sensitivity(sens), Trusted: trusted, Time: sealed[0].Time}
		err := k.open("t", seq, &e)
		if err == nil && (content != sealed[0].Content || seq != 0 || role != "tool" || sens != 0 || trusted) {
			t.Fatalf("accepted a forged entry: %q at %d", content, seq)
		}
	})
}

// FuzzEncryptedHistory lets a malicious backend drop, repeat, reorder and
// splice stored entries as ops says: Load returns exactly the history as
// written, or an error wrapping ErrTampered.
func FuzzEncryptedHistory(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})          // drop the first
	f.Add([]byte{4})          // drop the last
	f.Add([]byte{0, 1, 2, 3}) // keep a prefix
	f.Add([]byte{1, 0, 2, 3, 4})
	f.Add([]byte{0, 1, 2, 3, 4, 4})
	f.Add([]byte{0, 1, 2, 3, 4, 5}) // splice in the other task's entry
	f.Add([]byte{5, 6, 7, 8, 9})    // the other task's whole history
	f.Fuzz(func(t *testing.T, ops []byte) {
		ctx := context.Background()
		inner := NewMemoryBackend()
		enc := Encrypted(inner)
		var want []string
		for i := range 5 {
			c := string(rune('a' + i))
			want = append(want, c)
			if err := enc.Append(ctx, "t", Entry{Role: "tool", Content: c}); err != nil {
				t.Fatal(err)
			}
			if err := enc.Append(ctx, "u", Entry{Role: "tool", Content: c}); err != nil {
				t.Fatal(err)
			}
		}
		mine, _ := inner.Load(ctx, "t")
		theirs, _ := inner.Load(ctx, "u")
		pool := append(slices.Clone(mine), theirs...)
		var forged []Entry
		for _, op := range ops {
			forged = append(forged, pool[int(op)%len(pool)])
		}
		if len(ops) == 0 {
			forged = mine
		}
		evil := NewMemoryBackend()
		for _, e := range forged {
			if err := evil.Append(ctx, "t", e); err != nil {
				t.Fatal(err)
			}
		}
		enc.(*encrypted).inner = evil
		got, err := enc.Load(ctx, "t")
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("error does not wrap ErrTampered: %v", err)
			}
			return
		}
		var contents []string
		for _, e := range got {
			contents = append(contents, e.Content)
		}
		if !slices.Equal(contents, want) {
			t.Fatalf("ops %v: read %q, wrote %q", ops, contents, want)
		}
	})
}
