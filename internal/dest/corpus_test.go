package dest_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/internal/dest"
)

// corpusLine is one case of testdata/adversarial.txt.
type corpusLine struct {
	line  int
	class string // "private", "invalid", "file:<path>" or "public:<host>"
	raw   string
}

// readCorpus parses testdata/adversarial.txt: "<class> <destination>" per
// line, '#' comments and blank lines skipped, a destination starting with
// '"' Go-unquoted.
func readCorpus(tb testing.TB) []corpusLine {
	tb.Helper()
	f, err := os.Open("testdata/adversarial.txt")
	require.NoError(tb, err)
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		class, raw, ok := strings.Cut(line, " ")
		require.True(tb, ok, "line %d: want <class> <destination>", n)
		if strings.HasPrefix(raw, `"`) {
			raw, err = strconv.Unquote(raw)
			require.NoError(tb, err, "line %d", n)
		}
		out = append(out, corpusLine{line: n, class: class, raw: raw})
	}
	require.NoError(tb, sc.Err())
	return out
}

func TestAdversarialCorpus(t *testing.T) {
	t.Parallel()
	lines := readCorpus(t)
	require.GreaterOrEqual(t, len(lines), 60)
	for _, c := range lines {
		t.Run(strconv.Itoa(c.line)+"_"+c.class, func(t *testing.T) {
			t.Parallel()
			d, err := dest.Parse(c.raw, "/workspace")
			switch {
			case c.class == "private":
				require.NoError(t, err, "%q", c.raw)
				assert.True(t, d.Private, "%q parsed as %+v", c.raw, d)
			case c.class == "invalid":
				assert.Error(t, err, "%q parsed as %+v (%s)", c.raw, d, d)
			case strings.HasPrefix(c.class, "file:"):
				require.NoError(t, err, "%q", c.raw)
				assert.Equal(t, dest.KindFile, d.Kind, "%q", c.raw)
				assert.Equal(t, strings.TrimPrefix(c.class, "file:"), d.Path, "%q", c.raw)
			case strings.HasPrefix(c.class, "public:"):
				require.NoError(t, err, "%q", c.raw)
				assert.False(t, d.Private, "%q parsed as %+v", c.raw, d)
				assert.Equal(t, strings.TrimPrefix(c.class, "public:"), d.Host, "%q", c.raw)
			default:
				t.Fatalf("line %d: unknown class %q", c.line, c.class)
			}
		})
	}
}
