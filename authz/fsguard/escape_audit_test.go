package fsguard

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// A name that leaves the root is refused with the lexical path it leads to
// as the decision's destination, so the audit record shows where it went.
func TestEscapeDecisionNamesThePath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openPolicy, authz.TaskSpec{})
	r := e.root(t)
	_, err := r.ReadFile(e.ctx, "sub/../../outside/secret.txt")
	require.ErrorIs(t, err, ErrEscape)
	var de *authz.DeniedError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, authz.RuleEscape, de.Decision.Rule)
	assert.Equal(t, filepath.Join(e.outside, "secret.txt"), de.Decision.Destination)
}
