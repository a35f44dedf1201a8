package dest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

// stableDigest is the SHA-256 of the IDNA behaviour of every code point
// outside unstableRanges (see idnaDigest). It is the same whichever Unicode
// tables golang.org/x/net/idna and golang.org/x/text were built with, so
// this test fails exactly when a toolchain or module upgrade changes how a
// host that Parse accepts is canonicalised.
const stableDigest = "4737bc20ef97acdfdd0c8801de3def46cb9f7afd3ce82ead07687be2467aae5a"

func TestIDNAStable(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("walks every code point")
	}
	assert.Equal(t, stableDigest, idnaDigest(), "the IDNA tables changed for code points outside unstableRanges: regenerate idnapin_table.go (testdata/idnadiff)")
}

// idnaDigest hashes, for every code point outside unstableRanges, the
// result of the host profile on the code point alone and inside a label,
// its bidi class, its canonical combining class and its compatibility
// decomposition.
func idnaDigest() string {
	h := sha256.New()
	var b []byte
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if 0xD800 <= r && r <= 0xDFFF {
			continue
		}
		s := string(r)
		if _, unstable := unstableRune(s); unstable {
			continue
		}
		b = strconv.AppendInt(b[:0], int64(r), 16)
		for _, in := range [...]string{s, "a" + s + "b.com"} {
			a, err := profile.ToASCII(in)
			b = append(b, ' ')
			b = append(b, a...)
			b = strconv.AppendBool(b, err == nil)
		}
		p, _ := bidi.LookupRune(r)
		n := norm.NFKC.PropertiesString(s)
		b = fmt.Appendf(b, " %d %d %q\n", p.Class(), norm.NFC.PropertiesString(s).CCC(), n.Decomposition())
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestUnstableRangesSorted(t *testing.T) {
	t.Parallel()
	for i, rg := range unstableRanges {
		require.LessOrEqual(t, rg[0], rg[1], "range %d", i)
		if i > 0 {
			require.Greater(t, rg[0], unstableRanges[i-1][1]+1, "range %d overlaps or touches the previous one", i)
		}
	}
}
