package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskguard/taskguard/secrets"
)

// A minter issues a short-lived JWT per lease; the receiving service checks
// it with a verifier. Revoking the credential (the broker does so when the
// lease dies) makes the verifier reject the token.
func ExampleMinter() {
	now := func() time.Time { return time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC) }
	minter, err := secrets.NewMinter(map[string]secrets.TokenSpec{
		"billing-api": {Audience: "billing.internal", Scope: []string{"invoices:read", "invoices:write"}, TTL: 5 * time.Minute},
	},
		secrets.WithHMACKey([]byte("example key: use 32+ random bytes")),
		secrets.WithIssuer("https://broker.example"),
		secrets.WithClock(now),
	)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	cred, err := minter.Issue(ctx, secrets.IssueRequest{
		Name: "billing-api", Task: "task-42", Agent: "agent-7",
		Scope: []string{"invoices:read"}, ExpiresAt: now().Add(time.Hour),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	token := string(cred.Value())
	fmt.Println("segments:", strings.Count(token, ".")+1)

	// The receiving service; in another process use NewVerifier.
	verifier, err := minter.Verifier("billing.internal")
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := verifier.Verify(token)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.Task, claims.Agent, claims.Audience, claims.Scope)
	fmt.Println("expires:", claims.ExpiresAt.Format(time.RFC3339), claims.ExpiresAt.Equal(cred.ExpiresAt))

	if err := minter.Revoke(ctx, cred); err != nil {
		fmt.Println(err)
		return
	}
	_, err = verifier.Verify(token)
	fmt.Println(err, errors.Is(err, secrets.ErrInvalidToken))
	fmt.Println(minter)
	// Output:
	// segments: 3
	// task-42 agent-7 [billing.internal] [invoices:read]
	// expires: 2030-01-02T15:09:05Z true
	// secrets: invalid token: revoked true
	// secrets.Minter{alg: HS256, issuer: https://broker.example}
}
