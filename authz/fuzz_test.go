package authz

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParsePolicy(f *testing.F) {
	for _, cf := range loadCorpus(f) {
		f.Add(cf.Policy)
	}
	f.Add("rules:\n- {name: a, tools: [x], effect: allow, when: 'true'}\n")
	f.Add("rules: [")
	f.Add("tools:\n  pay: {args: {amount: int, to: string, cc: list(string), m: 'map(string, double)'}}\nrules:\n- {name: a, tools: [pay], effect: allow, when: 'args.amount < 5 && has(args.cc)'}\n")
	f.Add("tools: {pay: {args: {amount: int}}, refund: {args: {amount: double}}}\nrules:\n- {name: a, tools: ['*'], effect: allow, when: 'args.amount > 1'}\n")
	f.Add("variables:\n- {name: r, expression: 'intent == \"read\"'}\n- {name: s, expression: 'variables.r && true'}\nrules:\n- {name: a, tools: [x], effect: allow, when: 'variables.s'}\n")
	f.Add("rules:\n- name: a\n  tools: x\n  effect: ask\n  when: |\n    args.all(k, k != '')\n")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := ParsePolicy("fuzz.yaml", []byte(src))
		if err != nil {
			if p != nil {
				t.Fatal("policy returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if p.Version() == "" {
			t.Fatal("policy without version")
		}
		for _, r := range p.Rules() {
			if validRuleName(r.Name) != nil || len(r.Tools) == 0 || r.When == "" {
				t.Fatalf("invalid rule accepted: %+v", r)
			}
		}
	})
}

// FuzzCheck decides arbitrary calls against the corpus policies. Invariants:
// no panic (Check recovers, so RuleInternal is a failure here), never Allow
// when anything errored, and an allowed call satisfies the built-in checks.
func FuzzCheck(f *testing.F) {
	corpus := loadCorpus(f)
	var policies []*Policy
	for name, cf := range corpus {
		p, err := ParsePolicy(name, []byte(cf.Policy))
		if err != nil {
			f.Fatal(err)
		}
		policies = append(policies, p)
		for _, c := range cf.Cases {
			f.Add(uint8(len(policies)-1), c.Call.Tool, c.Call.Intent, c.Call.Destination, int8(c.Call.Sensitivity), `{"limit": 10, "n": 1}`)
		}
	}
	f.Add(uint8(0), "http.fetch", "read", "http://[::ffff:169.254.169.254]/", int8(1), `{"x": [1, 2, {"y": null}]}`)
	f.Add(uint8(1), "fs.read", "read", "file:///workspace/%2e%2e/etc/passwd", int8(9), `[]`)
	f.Add(uint8(0x80), "http.fetch", "read", "https://api.github.com/", int8(0), `{}`)
	f.Add(uint8(0x81), "db.delete", "delete", "db://orders", int8(1), `{"id": 1}`)

	guards := make([]*Guard, len(policies))
	for i, p := range policies {
		g, err := New(WithPolicy(p))
		if err != nil {
			f.Fatal(err)
		}
		guards[i] = g
	}
	f.Fuzz(func(t *testing.T, pi uint8, tool, intent, destination string, sens int8, args string) {
		g := guards[int(pi)%len(guards)]
		ctx, task, err := g.Begin(context.Background(), TaskSpec{
			Agent: Agent{ID: "fuzz"}, Clearance: Internal,
			Labels: map[string]string{"workdir": "/workspace", "env": "dev"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer task.End()
		a, _ := DecodeArgs([]byte(args))
		c := Call{Tool: tool, Intent: intent, Destination: destination, Sensitivity: Sensitivity(sens), Args: a}
		parentCtx := ctx
		if pi&0x80 != 0 {
			// Under a sub-task of another agent with a label of its own:
			// delegation may only narrow, so the sub-task never gets a more
			// permissive answer than its parent.
			ctx, _, err = g.Begin(ctx, TaskSpec{Agent: Agent{ID: "fuzz-sub"}, Labels: map[string]string{"extra": "1"}})
			if err != nil {
				t.Fatal(err)
			}
		}
		d := g.Check(ctx, c)
		if pi&0x80 != 0 {
			if pd := g.Check(parentCtx, c); d.Effect == Allow && pd.Effect != Allow || d.Effect == Ask && pd.Effect == Deny {
				t.Fatalf("sub-task got %v where its parent got %v: %+v", d.Effect, pd.Effect, c)
			}
		}
		if d.Rule == RuleInternal {
			t.Fatalf("Check panicked: %v", d.Err)
		}
		if d.Err != nil && d.Effect != Deny {
			t.Fatalf("effect %v with error %v", d.Effect, d.Err)
		}
		if d.Effect == Deny {
			return
		}
		if !Sensitivity(sens).Valid() || Sensitivity(sens) > Internal || tool == "" || intent == "" || strings.HasPrefix(d.Rule, "@") {
			t.Fatalf("allowed a call that fails the built-in checks: %+v → %+v", c, d)
		}
		if destination != "" && d.Destination == "" {
			t.Fatalf("allowed a call without a canonical destination: %q", destination)
		}
	})
}

// FuzzDecodeArgs: never panics; what it accepts is a JSON object that
// encoding/json reads the same way and whose keys differ in more than case.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{`{"url": "https://x"}`, `{"a": [1, 2.5, {"b": null}]}`, `{"u": 1, "U": 2}`, `[]`, ``, `null`, `{"a":1}{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := DecodeArgs([]byte(raw))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for k := range m {
			if seen[strings.ToLower(k)] {
				t.Fatalf("accepted keys equal ignoring case: %q", raw)
			}
			seen[strings.ToLower(k)] = true
		}
		var ref map[string]any
		if strings.TrimSpace(raw) != "" && strings.TrimSpace(raw) != "null" {
			if err := json.Unmarshal([]byte(raw), &ref); err != nil {
				t.Fatalf("accepted what encoding/json rejects: %q: %v", raw, err)
			}
			if len(ref) != len(m) {
				t.Fatalf("key count differs: %q", raw)
			}
		}
	})
}
