package redisbackend

import (
	"testing"
	"time"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/contextguard"
)

// FuzzDecode: decoding what Redis returns never panics, and whatever
// decodes encodes back to the same bytes (one encoding per entry).
func FuzzDecode(f *testing.F) {
	for _, e := range []contextguard.Entry{
		{},
		{Role: "user", Content: "hello", Source: "user", Trusted: true, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{Role: "tool", Content: "\x00\xff", Source: "https://example.org", Sensitivity: authz.Restricted, Time: time.Unix(0, 1).In(time.FixedZone("", -3600))},
	} {
		s, err := encode(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	f.Add("")
	f.Add("\x01")
	f.Add("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := decode(s)
		if err != nil {
			return
		}
		if !e.Sensitivity.Valid() {
			t.Fatalf("decoded invalid sensitivity %d", e.Sensitivity)
		}
		again, err := encode(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if again != s {
			t.Fatalf("decode(%q) re-encodes to %q", s, again)
		}
	})
}
