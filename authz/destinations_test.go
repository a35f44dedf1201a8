package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const destinationsPolicy = `rules:
  - name: mail-corp
    tools: ["mail.send"]
    effect: allow
    when: destinations.all(d, d.kind == "email" && d.host == "corp.example")
  - name: share-public
    tools: ["share"]
    effect: allow
    when: destinations.size() >= 1 && destinations.all(d, !d.private)
  - name: first-is-primary
    tools: ["probe"]
    effect: allow
    when: >-
      destination.canonical == destinations[0].canonical &&
      destinations.map(d, d.canonical) == ["https://a.example/", "bob@corp.example", "/work/notes.txt"]
  - name: none
    tools: ["noop"]
    effect: allow
    when: destinations.size() == 0
`

func TestDestinationsInCEL(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, destinationsPolicy)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}, Labels: map[string]string{"workdir": "/work"}})
	require.NoError(t, err)
	defer task.End()

	d := g.Check(ctx, Call{Tool: "probe", Intent: "read", Destination: "HTTPS://A.Example:443",
		Destinations: []string{"bob@CORP.example", "./notes.txt"}})
	require.Equal(t, Allow, d.Effect, d.Reason)
	assert.Equal(t, "https://a.example/", d.Destination)
	assert.Equal(t, []string{"bob@corp.example", "/work/notes.txt"}, d.Destinations)

	mail := func(to ...string) Decision {
		return g.Check(ctx, Call{Tool: "mail.send", Intent: "write", Destination: to[0], Destinations: to[1:]})
	}
	assert.Equal(t, Allow, mail("alice@corp.example", "bob@Corp.Example.", "carol@corp.example").Effect)
	d = mail("alice@corp.example", "bob@corp.example", "mallory@evil.example")
	assert.Equal(t, RuleNoMatch, d.Rule, "one recipient outside decides for the whole call")

	share := func(to ...string) Decision {
		return g.Check(ctx, Call{Tool: "share", Intent: "write", Destination: to[0], Destinations: to[1:]})
	}
	assert.Equal(t, Allow, share("https://a.example/x", "https://b.example/y").Effect)
	assert.Equal(t, RuleNoMatch, share("https://a.example/x", "http://0x7f.1/admin").Rule, "a private further destination in any spelling")
	assert.Equal(t, RuleNoMatch, share("https://a.example/x", "https://b.example/", "http://169.254.169.254/").Rule)

	assert.Equal(t, Allow, g.Check(ctx, Call{Tool: "noop", Intent: "read"}).Effect, "no destination: an empty list")
}

func TestDestinationsBuiltinChecks(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, destinationsPolicy)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	share := func(primary string, more ...string) Decision {
		return g.Check(ctx, Call{Tool: "share", Intent: "write", Destination: primary, Destinations: more})
	}
	for _, tc := range []struct {
		name    string
		primary string
		more    []string
		reason  string
	}{
		{"userinfo", "https://a.example/", []string{"https://b.example/", "https://user:pw@c.example/"}, "destinations[2] rejected"},
		{"relative path without workdir", "https://a.example/", []string{"./notes.txt"}, "destinations[1] rejected"},
		{"empty entry", "https://a.example/", []string{"https://b.example/", ""}, "destinations[2] rejected: empty destination"},
		{"NUL byte", "https://a.example/", []string{"/tmp/a\x00b"}, "destinations[1] rejected"},
		{"too long", "https://a.example/", []string{"https://b.example/" + strings.Repeat("a", MaxDestinationSize)}, "destinations[1] is longer than"},
		{"no primary", "", []string{"https://b.example/"}, "no primary destination"},
		{"too many", "https://a.example/", make([]string, MaxDestinations+1), fmt.Sprintf("more than %d further destinations", MaxDestinations)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := share(tc.primary, tc.more...)
			assert.Equal(t, Deny, d.Effect)
			assert.Equal(t, RuleDestination, d.Rule)
			assert.Contains(t, d.Reason, tc.reason)
			assert.NotContains(t, d.Reason, "pw", "userinfo is never quoted")
		})
	}

	max := make([]string, MaxDestinations)
	for i := range max {
		max[i] = fmt.Sprintf("https://h%d.example/", i)
	}
	d := share("https://a.example/", max...)
	assert.Equal(t, Allow, d.Effect, "exactly MaxDestinations further destinations: %s", d.Reason)
	assert.Len(t, d.Destinations, MaxDestinations)
}

func TestDestinationsInspected(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, destinationsPolicy)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	var seen []string
	task.Inspect("no-evil", func(ci *CallInfo) error {
		seen = append(seen, ci.Kind+" "+ci.Host+" "+ci.Destination)
		if ci.Host == "evil.example" {
			return errors.New("evil.example is off limits")
		}
		return nil
	})
	d := g.Check(ctx, Call{Tool: "share", Intent: "write", Destination: "https://a.example/",
		Destinations: []string{"https://b.example/", "https://EVIL.example/x", "https://c.example/"}})
	assert.Equal(t, Deny, d.Effect)
	assert.Equal(t, RuleInspect+":no-evil", d.Rule)
	assert.Equal(t, "destinations[2]: evil.example is off limits", d.Reason)
	assert.Equal(t, []string{"url a.example https://a.example/", "url b.example https://b.example/", "url evil.example https://evil.example/x"}, seen,
		"each destination inspected on its own, in order, up to the first denial")
}

func TestDestinationsBindTheApproval(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, `rules:
  - name: mail-asks
    tools: ["mail.send"]
    effect: ask
    when: true
`)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	digest := func(more ...string) string {
		d := g.Check(ctx, Call{Tool: "mail.send", Intent: "write", Destination: "a@corp.example", Destinations: more})
		require.Equal(t, Ask, d.Effect)
		return d.Digest
	}
	one, two, other := digest(), digest("b@corp.example"), digest("m@evil.example")
	assert.NotEqual(t, one, two)
	assert.NotEqual(t, two, other, "an approval for one set of recipients does not cover another")
	assert.Equal(t, two, digest("b@CORP.example."), "bound to the canonical destinations")
}

func TestDestinationsVisible(t *testing.T) {
	t.Parallel()
	g, _ := mustGuard(t, destinationsPolicy)
	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "a"}})
	require.NoError(t, err)
	defer task.End()
	assert.Equal(t, []string{"mail.send", "share"}, g.Visible(ctx, []string{"mail.send", "share", "other"}),
		"destinations is unknown to Visible, like destination")
}

func TestDestinationsCostEstimate(t *testing.T) {
	t.Parallel()
	// The element cost times MaxDestinations+1 stays within the limit for
	// a glob per destination.
	_, err := NewPolicy("p", Rule{Name: "r", Tools: []string{"*"}, Effect: Allow,
		When: `destinations.all(d, d.host.glob("*.corp.example") && !d.private && d.path.within("/shared"))`})
	require.NoError(t, err)
}

// BenchmarkCheckDestinations decides a mail to n recipients with a rule
// over all of them.
func BenchmarkCheckDestinations(b *testing.B) {
	for _, n := range []int{0, 10, 100} {
		b.Run(fmt.Sprintf("destinations=%d", n), func(b *testing.B) {
			when := `destination.host == "corp.example" && destinations.all(d, d.host == "corp.example")`
			if n == 0 {
				// The rule reads only destination: what calls without
				// further destinations cost.
				when = `destination.host == "corp.example"`
			}
			g, ctx := guardFor(b, TaskSpec{Agent: Agent{ID: "a"}},
				Rule{Name: "mail-corp", Tools: []string{"mail.send"}, Effect: Allow, When: when})
			call := Call{Tool: "mail.send", Intent: "write", Destination: "alice@corp.example"}
			for i := 1; i < n; i++ {
				call.Destinations = append(call.Destinations, fmt.Sprintf("user%d@corp.example", i))
			}
			b.ReportAllocs()
			for b.Loop() {
				if g.Check(ctx, call).Effect != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}

// FuzzCheckDestinations decides calls with arbitrary further destinations
// (one per line). Invariants: no panic, and an allowed call has every
// destination canonical, each accepted by the rule over all of them.
func FuzzCheckDestinations(f *testing.F) {
	f.Add("https://a.example/", "https://b.example/\nbob@corp.example")
	f.Add("https://a.example/", "http://0x7f.1/\n./x")
	f.Add("", "https://b.example/")
	f.Add("mailto:a@corp.example", "\n\n")
	g, err := New(WithPolicy(mustPolicy(f, destinationsPolicy)))
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, primary, more string) {
		ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "fuzz"}, Labels: map[string]string{"workdir": "/work"}})
		require.NoError(t, err)
		defer task.End()
		c := Call{Tool: "share", Intent: "write", Destination: primary, Destinations: strings.Split(more, "\n")}
		d := g.Check(ctx, c)
		if d.Rule == RuleInternal {
			t.Fatalf("internal error: %v", d.Err)
		}
		if d.Effect != Allow {
			return
		}
		if d.Err != nil || len(d.Destinations) != len(c.Destinations) {
			t.Fatalf("allowed with %d of %d destinations, err %v", len(d.Destinations), len(c.Destinations), d.Err)
		}
		for _, canon := range d.Destinations {
			if canon == "" {
				t.Fatal("allowed with an empty destination")
			}
		}
	})
}
