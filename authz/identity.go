package authz

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// IdentityVerifier turns a credential (a SPIFFE JWT-SVID, an OIDC access
// token, ...) into the verified [Agent] it identifies: its ID and, as
// Attrs, the claims policies may read as agent.attrs (the trust domain or
// issuer among them). It returns an error for a credential it does not
// accept. Implementations are in authz/identity; VerifyIdentity must be
// safe for concurrent use and may block (it gets Begin's context).
type IdentityVerifier interface {
	VerifyIdentity(ctx context.Context, credential string) (Agent, error)
}

// IdentityVerifierFunc adapts a function to [IdentityVerifier].
type IdentityVerifierFunc func(ctx context.Context, credential string) (Agent, error)

// VerifyIdentity calls f.
func (f IdentityVerifierFunc) VerifyIdentity(ctx context.Context, credential string) (Agent, error) {
	return f(ctx, credential)
}

// WithIdentityVerifier makes [Guard.Begin] verify agents: a top-level task
// must carry a [TaskSpec.Credential], which v turns into the task's Agent;
// a sub-task may carry one (a sub-agent with its own identity) or run
// under the agent its host names, since delegation only narrows. Without
// it, Begin takes Agent as written and refuses a Credential it cannot
// check. The last WithIdentityVerifier wins.
func WithIdentityVerifier(v IdentityVerifier) Option {
	return func(g *Guard) error {
		if v == nil {
			return errors.New("WithIdentityVerifier: nil verifier")
		}
		g.identity = v
		return nil
	}
}

// MaxCredentialSize bounds [TaskSpec.Credential].
const MaxCredentialSize = 16 << 10

// ErrIdentity is wrapped by every error of Begin about the agent's
// identity: no credential where one is required, a credential that does
// not verify, an Agent that disagrees with it.
var ErrIdentity = errors.New("authz: agent identity not verified")

// verifyAgent returns the agent of spec: verified from spec.Credential
// when there is one. top says whether the task has no parent.
func (g *Guard) verifyAgent(ctx context.Context, spec TaskSpec, top bool) (Agent, error) {
	if spec.Credential == "" {
		if g.identity != nil && top {
			return Agent{}, fmt.Errorf("%w: the guard verifies identities and the task spec has no credential", ErrIdentity)
		}
		return spec.Agent, nil
	}
	if g.identity == nil {
		return Agent{}, fmt.Errorf("%w: the task spec has a credential and the guard has no identity verifier", ErrIdentity)
	}
	if len(spec.Credential) > MaxCredentialSize {
		return Agent{}, fmt.Errorf("%w: the credential is longer than %d bytes", ErrIdentity, MaxCredentialSize)
	}
	a, err := verifyIdentity(ctx, g.identity, spec.Credential)
	if err != nil {
		// The verifier's message names what failed; it must not carry the
		// credential, which is a bearer token.
		return Agent{}, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	if a.ID == "" {
		return Agent{}, fmt.Errorf("%w: the verifier returned no agent ID", ErrIdentity)
	}
	if spec.Agent.ID != "" && spec.Agent.ID != a.ID {
		return Agent{}, fmt.Errorf("%w: the spec names agent %q but the credential is for %q", ErrIdentity, spec.Agent.ID, a.ID)
	}
	if len(spec.Agent.Attrs) > 0 && !maps.Equal(spec.Agent.Attrs, a.Attrs) {
		return Agent{}, fmt.Errorf("%w: agent attributes come from the credential; the spec must not set others", ErrIdentity)
	}
	return a, nil
}

// verifyIdentity runs the verifier, turning a panic into an error.
func verifyIdentity(ctx context.Context, v IdentityVerifier, credential string) (a Agent, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, err = Agent{}, errors.New("identity verifier panicked")
		}
	}()
	return v.VerifyIdentity(ctx, credential)
}
