package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// corpusFile is one policy of testdata/decisions with the calls of its
// case file (X.yaml and X.cases.yaml), as seeds of the fuzz targets. The
// cases themselves run through authztest in corpus_cases_test.go.
type corpusFile struct {
	Policy string
	Cases  []struct {
		Call struct {
			Tool        string      `yaml:"tool"`
			Intent      string      `yaml:"intent"`
			Destination string      `yaml:"destination"`
			Sensitivity Sensitivity `yaml:"sensitivity"`
		} `yaml:"call"`
	} `yaml:"cases"`
}

func loadCorpus(t testing.TB) map[string]corpusFile {
	t.Helper()
	files, err := filepath.Glob("testdata/decisions/*.yaml")
	require.NoError(t, err)
	out := map[string]corpusFile{}
	for _, f := range files {
		if strings.HasSuffix(f, ".cases.yaml") {
			continue
		}
		policy, err := os.ReadFile(f)
		require.NoError(t, err)
		cases, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".cases.yaml")
		require.NoError(t, err)
		var cf corpusFile
		require.NoError(t, yaml.Unmarshal(cases, &cf), f)
		cf.Policy = string(policy)
		out[filepath.Base(f)] = cf
	}
	require.NotEmpty(t, out)
	return out
}
