package secrets

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

func TestRedactEncodedForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, _ := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	_, err := e.b.Lease(ctx, "github-token")
	require.NoError(t, err)
	_, err = e.b.Lease(ctx, "db-password")
	require.NoError(t, err)
	for _, sec := range []string{tokenValue, "correct horse battery staple"} {
		for _, enc := range valueEncodings {
			for _, around := range [][2]string{{"", ""}, {"u:", ""}, {"user:", "@x"}} {
				v := enc.enc(around[0] + sec + around[1])
				out := e.b.Redact("log: " + v + " end")
				msg := fmt.Sprintf("%s with %d+%d bytes around", enc.name, len(around[0]), len(around[1]))
				if strings.HasPrefix(enc.name, "every byte escaped, mixed") || enc.name == "partly escaped" || enc.name == "double escaped" {
					continue // Redact replaces the forms it can enumerate; the inspector decodes the rest
				}
				assert.Contains(t, out, Redacted, msg)
				assert.NotContains(t, out, enc.enc(sec), msg)
				assert.NotContains(t, out, sec, msg)
			}
		}
		for _, user := range []string{"", "a", "ab", "abc", "admin"} {
			out := e.b.Redact("Authorization: " + basic(user, sec))
			assert.NotContains(t, out, basic(user, sec), "Basic with a %d-byte user", len(user))
			assert.Contains(t, out, Redacted)
		}
	}
	assert.Equal(t, "nothing "+hex.EncodeToString([]byte("to see here")), e.b.Redact("nothing "+hex.EncodeToString([]byte("to see here"))))
}

// mintBroker returns a broker over a minter of "github-token" tokens
// (5 minute TTL), both on clk, and a task context.
func mintBroker(t *testing.T) (*Broker, *authztest.Clock, context.Context, *authz.Task) {
	t.Helper()
	e := newEnv(t)
	m, err := NewMinter(map[string]TokenSpec{"github-token": {Audience: "api.github.com", TTL: 5 * time.Minute}},
		WithHMACKey([]byte("0123456789abcdef0123456789abcdef")), WithIssuer("https://broker.test"), WithClock(e.clk.Now))
	require.NoError(t, err)
	b, err := NewBroker(e.g, m, WithClock(e.clk.Now))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	ctx, task := e.begin(t, authz.TaskSpec{TTL: time.Hour})
	return b, e.clk, ctx, task
}

func TestMintedTokensStayRedactedUntilTheyExpire(t *testing.T) {
	t.Parallel()
	for _, end := range []struct {
		name string
		kill func(l *Lease, task *authz.Task)
	}{
		{"revoke", func(l *Lease, _ *authz.Task) { l.Revoke() }},
		{"task end", func(_ *Lease, task *authz.Task) { task.End() }},
		{"broker close", func(l *Lease, _ *authz.Task) { _ = l.broker.Close() }},
	} {
		t.Run(end.name, func(t *testing.T) {
			t.Parallel()
			b, clk, ctx, task := mintBroker(t)
			l, err := b.Lease(ctx, "github-token")
			require.NoError(t, err)
			tok := value(t, l)
			exp := l.ExpiresAt()
			texts := []string{tok, "Bearer " + tok, url.QueryEscape(tok), base64.StdEncoding.EncodeToString([]byte("x:" + tok))}
			for _, s := range texts {
				assert.NotContains(t, b.Redact(s), tok)
			}
			clk.Advance(time.Minute)
			end.kill(l, task)
			assert.ErrorIs(t, l.Use(func([]byte) error { return nil }), ErrLeaseRevoked)
			for _, s := range texts {
				out := b.Redact(s)
				assert.Contains(t, out, Redacted, "a verifier elsewhere still accepts the token")
				assert.NotContains(t, out, tok)
			}
			clk.Advance(exp.Sub(clk.Now()) - time.Second)
			assert.Equal(t, Redacted, b.Redact(tok), "just before expiry")
			clk.Advance(maxLeeway + 2*time.Second)
			assert.Equal(t, tok, b.Redact(tok), "expired, and past any verifier's leeway: dropped")
			b.mu.Lock()
			assert.Empty(t, b.linger, "expired values are forgotten")
			b.mu.Unlock()
		})
	}
}

func TestLingeringValuesAreBounded(t *testing.T) {
	t.Parallel()
	b, clk, ctx, _ := mintBroker(t)
	for range 50 {
		l, err := b.Lease(ctx, "github-token", TTL(time.Minute))
		require.NoError(t, err)
		l.Revoke()
		clk.Advance(10 * time.Second)
		_ = b.Redact("x")
	}
	b.mu.Lock()
	n := len(b.linger)
	b.mu.Unlock()
	// Tokens live one minute plus one minute of leeway: 10 s apart, at
	// most 12 linger at once.
	assert.LessOrEqual(t, n, 13)
	assert.Positive(t, n)
}
