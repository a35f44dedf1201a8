package authz_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/authz/authztest"
)

// TestDecisionCorpus runs the decision corpus, testdata/decisions: each
// policy X.yaml with its case file X.cases.yaml, through the same runner
// users run their own case files with.
func TestDecisionCorpus(t *testing.T) {
	t.Parallel()
	policies, err := filepath.Glob("testdata/decisions/*.yaml")
	require.NoError(t, err)
	total := 0
	for _, f := range policies {
		if strings.HasSuffix(f, ".cases.yaml") {
			continue
		}
		cases := strings.TrimSuffix(f, ".yaml") + ".cases.yaml"
		cf, err := authztest.LoadCases(cases)
		require.NoError(t, err)
		total += len(cf.Cases)
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			p, err := authz.LoadPolicyFiles(f)
			require.NoError(t, err)
			clock := authztest.NewClock(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
			g, err := authz.New(authz.WithPolicy(p), authz.WithClock(clock.Now))
			require.NoError(t, err)
			authztest.RunWith(t, g, []authztest.RunOption{authztest.WithCaseClock(clock)}, cases)
		})
	}
	assert.GreaterOrEqual(t, total, 60, "the corpus keeps at least 60 cases")
}
