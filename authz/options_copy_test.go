package authz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptionsCopyTheirArguments: what New was given does not change
// afterwards when the caller reuses or zeroes its keys and lists.
func TestOptionsCopyTheirArguments(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	intents := []string{"inspect"}
	g, err := New(WithName("a"), WithSigningKey("k", priv), WithTrustedKey("k", pub), WithObservedIntents(intents...))
	require.NoError(t, err)
	clear(priv)
	intents[0] = "other"

	ctx, task, err := g.Begin(context.Background(), TaskSpec{Agent: Agent{ID: "agent"}})
	require.NoError(t, err)
	defer task.End()
	tok, err := task.Token("a")
	require.NoError(t, err, "the guard kept its own copy of the signing key")
	_, resumed, err := g.Resume(context.Background(), tok)
	require.NoError(t, err, "a token signed after the caller zeroed its key still verifies")
	resumed.End()

	g.ObserveOutput(ctx, Call{Tool: "t", Intent: "inspect"}, Output{Classify: func(Call) Sensitivity { return Confidential }})
	assert.Equal(t, Confidential, task.Taint().Sensitivity, "the observed intents are the ones given to New")
}
