package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// holder keeps value-holding types every way a host might.
type holder struct {
	cred      Credential
	credPtr   *Credential
	creds     []Credential
	credMap   map[string]Credential
	lease     *Lease
	leases    []*Lease
	leaseMap  map[string]*Lease
	src       Source
	broker    *Broker
	anything  any
	Exported  Credential
	ExportedL *Lease
}

// leakSpellings are ways the value could show up in printed text.
func leakSpellings(v string) []string {
	bs := fmt.Sprint([]byte(v)) // "[103 104 ...]"
	return []string{
		v,
		fmt.Sprintf("%x", v),
		fmt.Sprintf("%X", v),
		fmt.Sprintf("% x", v[:8]),
		strings.Trim(bs, "[]")[:20],
		base64.StdEncoding.EncodeToString([]byte(v))[:16],
		fmt.Sprintf("%q", v[:10]),
	}
}

func TestNeverPrintableNested(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A Static broker, so the value also lingers in the broker after the
	// lease dies.
	b, err := NewBroker(e.g, Static(map[string]string{"github-token": tokenValue}), WithClock(e.clk.Now))
	require.NoError(t, err)
	defer b.Close()
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	l, err := b.Lease(ctx, "github-token")
	require.NoError(t, err)
	dead, err := b.Lease(ctx, "github-token")
	require.NoError(t, err)
	dead.Revoke()
	cred := NewCredential("cred-1", []byte(tokenValue), time.Time{})
	h := holder{
		cred: cred, credPtr: &cred, creds: []Credential{cred}, credMap: map[string]Credential{"k": cred},
		lease: l, leases: []*Lease{l, dead}, leaseMap: map[string]*Lease{"k": l},
		src: Static(map[string]string{"k": tokenValue}), broker: b, anything: cred,
		Exported: cred, ExportedL: l,
	}
	subjects := map[string]any{
		"holder": h, "pointer to holder": &h, "slice of holders": []holder{h}, "map of holders": map[string]holder{"h": h},
		"anonymous struct": struct{ c Credential }{cred}, "broker": b, "lease": l, "credential": cred,
	}
	for name, v := range subjects {
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "% x", "%10.4v", "%T %v"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v), fmt.Sprint([]any{v}))
		if js, err := json.Marshal(v); err == nil {
			outs = append(outs, string(js))
		}
		var jbuf, tbuf bytes.Buffer
		slog.New(slog.NewJSONHandler(&jbuf, nil)).Info("x", slog.Any("v", v))
		slog.New(slog.NewTextHandler(&tbuf, nil)).Info("x", slog.Any("v", v))
		outs = append(outs, jbuf.String(), tbuf.String())
		for i, o := range outs {
			for _, leak := range leakSpellings(tokenValue) {
				assert.NotContains(t, o, leak, "%s, output %d", name, i)
			}
		}
	}
	// The value is still there for those entitled to it.
	assert.Equal(t, tokenValue, value(t, l))
	got := cred.Value()
	assert.Equal(t, tokenValue, string(got))
	clear(got)
	assert.Equal(t, tokenValue, string(cred.Value()), "Value hands out a copy")
	assert.Nil(t, Credential{}.Value())
}
