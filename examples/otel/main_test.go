package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// span is the part of the stdout exporter's JSON the test reads.
type span struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
	Events []struct {
		Name       string
		Attributes []struct {
			Key   string
			Value struct{ Value any }
		}
	}
}

func (s span) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

func TestOtelExample(t *testing.T) {
	var out, spansOut bytes.Buffer
	require.NoError(t, run(&out, &spansOut))

	var spans []span
	sc := bufio.NewScanner(bytes.NewReader(spansOut.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s span
		require.NoError(t, json.Unmarshal(sc.Bytes(), &s))
		spans = append(spans, s)
	}
	require.NoError(t, sc.Err())
	require.Len(t, spans, 6, "five Authorize spans and the host's")
	step := spans[5]
	require.Equal(t, "agent.step", step.Name)

	type row struct{ tool, effect, rule string }
	var got []row
	for _, s := range spans[:5] {
		assert.Equal(t, "taskguard.authorize", s.Name)
		assert.Equal(t, step.SpanContext.SpanID, s.Parent.SpanID, "the guard's spans are children of the host's")
		assert.Equal(t, step.SpanContext.TraceID, s.SpanContext.TraceID)
		assert.Equal(t, "spiffe://example.org/agent/researcher", s.attr("gen_ai.agent.id"))
		assert.NotEmpty(t, s.attr("taskguard.task.id"))
		assert.NotEmpty(t, s.attr("taskguard.policy.version"))
		got = append(got, row{s.attr("gen_ai.tool.name").(string), s.attr("taskguard.effect").(string), s.attr("taskguard.rule").(string)})
	}
	assert.Equal(t, []row{
		{"http.fetch", "allow", "fetch-docs"},
		{"http.fetch", "deny", "@no-match"},
		{"mail.send", "deny", "no-export"},
		{"db.delete", "allow", "review-delete"},
		{"secrets.lease", "allow", "lease-search-key"},
	}, got)
	assert.Equal(t, "granted", spans[3].attr("taskguard.approval.outcome"))
	require.Len(t, step.Events, 1)
	assert.Equal(t, "taskguard.lease.granted", step.Events[0].Name)

	text := out.String()
	for _, want := range []string{
		"allowed  http.fetch docs.example.org",
		"denied   http.fetch paste.example.net (@no-match)",
		"denied   mail.send export (no-export)",
		"allowed  db.delete (ask, approved)",
		"allowed  lease search-api-key",
		"taskguard.decisions{effect=allow,operation=authorize,rule=fetch-docs} 1",
		"taskguard.decisions{effect=deny,operation=authorize,rule=no-export} 1",
		"taskguard.approval.duration{approval.outcome=granted} count=1",
		"taskguard.decision.duration{effect=allow,operation=authorize} count=3",
		"taskguard.lease.events{lease.event=granted} 1",
		"taskguard.lease.events{lease.event=revoked} 1",
		"taskguard.leases.active 0",
	} {
		assert.Contains(t, text, want)
	}

	// Neither the secret nor any argument or destination reaches telemetry.
	for _, bad := range []string{searchKey, "the notes", "someone@example.net", "paste.example.net", "release-notes", "db://drafts"} {
		assert.NotContains(t, spansOut.String(), bad)
	}
	assert.NotContains(t, text, searchKey)
}
