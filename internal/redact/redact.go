package redact

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// MinLen is the shortest secret a [Matcher] accepts; [New] returns an error
// wrapping [ErrShortSecret] for anything shorter. Redacting very short strings
// would destroy ordinary text without protecting anything.
const MinLen = 6

// ErrShortSecret is wrapped by the error [New] returns when a secret is
// shorter than [MinLen]. Test for it with [errors.Is]. The error message names
// the secret by its index and length only, never by its bytes.
var ErrShortSecret = errors.New("redact: secret too short")

// errTooLarge is returned by [New] when the secrets or the index entries
// would not fit the index's 32-bit counters.
var errTooLarge = errors.New("redact: secrets too large to index")

const (
	// gramLen is the length q of the windows the index is keyed by.
	gramLen = 4
	// maxStep caps the probe stride so that the index stays small when every
	// secret is long; any stride up to minLen-gramLen+1 is correct.
	maxStep = 64
	// hashMul is the 32-bit golden-ratio multiplier of the window hash.
	hashMul = 0x9E3779B1
	// filterBitsPerEntry sizes the filter bitset relative to the number of
	// index entries; a probe of text unrelated to the secrets passes the
	// filter with probability about 1/filterBitsPerEntry.
	filterBitsPerEntry = 32
	minFilterLog       = 10
	maxFilterLog       = 24
)

// Matcher finds occurrences of a fixed set of secret byte strings in text.
//
// A Matcher is immutable once [New] returns it and safe for concurrent use;
// none of its methods block. The zero Matcher and the nil *Matcher match
// nothing. A Matcher holds its own copy of the secrets; its String, GoString,
// Format, MarshalJSON and LogValue methods show only how many there are.
type Matcher struct {
	// ref is nil for a matcher without secrets.
	ref *indexRef
}

// indexRef holds the index one pointer further away from Matcher. fmt
// follows a pointer only at the top level of what it prints, and that top
// level can be the ref field itself (when a Matcher value that fmt cannot
// call methods on is printed with a verb it does not support), so the extra
// pointer keeps every fmt path down to an address instead of the index.
type indexRef struct {
	ix *index
}

// index is the immutable index built by New.
//
// Every distinct secret is at least minLen bytes long. For each secret and
// each offset off in [0, step) the index holds an entry for the 4-byte window
// secret[off:off+4]. Any occurrence of a secret starting at text position p
// covers exactly one probe position t (a multiple of step) with
// p <= t < p+step, and the window of text at t is that secret's window at
// offset t-p, so probing the text every step bytes finds every occurrence.
//
// An entry keeps only the window, its offset and the secret's length: the
// candidate text at a probe is then fixed, and one lookup in secrets decides
// it for every secret with that window, offset and length at once.
type index struct {
	// secrets maps each distinct secret to its number, an index of first.
	secrets map[string]int32
	// first[d] is the position in New's argument of the first secret
	// equal to distinct secret d, and next[i] the position of the next
	// secret equal to the one at i, or -1: the lists Find reports.
	first, next []int32
	// entries holds the distinct entries grouped by bucket and, within a
	// bucket, ordered by window, then offset, then decreasing length; the
	// entries of bucket b are entries[start[b]:start[b+1]].
	entries []entry
	start   []uint32
	// filter has the bit h>>filterShift set for the hash h of every indexed
	// window.
	filter      []uint64
	filterShift uint32
	bucketShift uint32
	// minLen is the length of the shortest secret and step the probe stride.
	minLen int
	step   int
}

// entry says that some secret of length n has the window gram at offset off.
type entry struct {
	gram uint32
	off  uint32
	n    uint32
}

// compareEntries orders entries by window, offset and decreasing length.
func compareEntries(a, b entry) int {
	return cmp.Or(cmp.Compare(a.gram, b.gram), cmp.Compare(a.off, b.off), cmp.Compare(b.n, a.n))
}

// New returns a [Matcher] for the given secrets.
//
// Duplicates are allowed and counted once; an empty or nil list yields a
// Matcher that matches nothing. A secret shorter than [MinLen] is an error
// wrapping [ErrShortSecret] whose message gives the index and length of the
// first such secret but none of its bytes. New copies the secrets, so the
// caller may reuse or wipe the slices afterwards.
//
// New runs in time about linear in the total length of the secrets and is
// meant to be called whenever the set of live secrets changes.
func New(secrets [][]byte) (*Matcher, error) {
	total := 0
	for i, s := range secrets {
		if len(s) < MinLen {
			return nil, fmt.Errorf("%w: secret %d has length %d, want at least %d", ErrShortSecret, i, len(s), MinLen)
		}
		total += len(s)
	}
	if len(secrets) == 0 {
		return &Matcher{}, nil
	}
	if uint64(total) > math.MaxUint32 || len(secrets) > math.MaxInt32 {
		return nil, errTooLarge
	}

	// Copy all secrets into one string and key the set by slices of it.
	var buf strings.Builder
	buf.Grow(total)
	for _, s := range secrets {
		buf.Write(s)
	}
	data := buf.String()
	t := &index{secrets: make(map[string]int32, len(secrets)), next: make([]int32, len(secrets)), minLen: total}
	distinct := make([]string, 0, len(secrets))
	last := make([]int32, 0, len(secrets)) // last[d]: the latest position equal to distinct secret d
	for i, s := range secrets {
		k := data[:len(s)]
		data = data[len(s):]
		t.next[i] = -1
		if d, dup := t.secrets[k]; dup {
			t.next[last[d]] = int32(i)
			last[d] = int32(i)
			continue
		}
		t.secrets[k] = int32(len(distinct))
		distinct = append(distinct, k)
		t.first = append(t.first, int32(i))
		last = append(last, int32(i))
		t.minLen = min(t.minLen, len(k))
	}
	t.step = min(t.minLen-gramLen+1, maxStep)

	numEntries := len(distinct) * t.step
	if uint64(numEntries) > math.MaxUint32/filterBitsPerEntry {
		return nil, errTooLarge
	}
	filterLog := min(max(ceilLog2(numEntries*filterBitsPerEntry), minFilterLog), maxFilterLog)
	bucketLog := min(max(ceilLog2(numEntries), 1), filterLog)
	t.filterShift = uint32(32 - filterLog)
	t.bucketShift = uint32(32 - bucketLog)
	t.filter = make([]uint64, 1<<filterLog/64)
	t.start = make([]uint32, 1<<bucketLog+1)
	t.entries = make([]entry, numEntries)

	// Counting sort of the entries by bucket: count, prefix-sum, fill.
	for _, k := range distinct {
		for off := range t.step {
			h := load32(k, off) * hashMul
			t.filter[h>>t.filterShift/64] |= 1 << (h >> t.filterShift % 64)
			t.start[h>>t.bucketShift+1]++
		}
	}
	for b := 1; b < len(t.start); b++ {
		t.start[b] += t.start[b-1]
	}
	next := slices.Clone(t.start[:len(t.start)-1])
	for _, k := range distinct {
		for off := range t.step {
			g := load32(k, off)
			b := (g * hashMul) >> t.bucketShift
			t.entries[next[b]] = entry{gram: g, off: uint32(off), n: uint32(len(k))}
			next[b]++
		}
	}
	// Order each bucket and drop repeated entries, moving the buckets down.
	w := uint32(0)
	for b := range len(t.start) - 1 {
		bucket := t.entries[t.start[b]:t.start[b+1]]
		if len(bucket) > 1 {
			slices.SortFunc(bucket, compareEntries)
			bucket = slices.Compact(bucket)
		}
		t.start[b] = w
		w += uint32(copy(t.entries[w:], bucket))
	}
	t.start[len(t.start)-1] = w
	t.entries = slices.Clip(t.entries[:w])
	return &Matcher{ref: &indexRef{ix: t}}, nil
}

// ceilLog2 returns the smallest k with 1<<k >= n, for n >= 1.
func ceilLog2(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// load32 returns the little-endian 4-byte window of s at i.
func load32(s string, i int) uint32 {
	_ = s[i+3]
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// scan probes s at p, p+step, p+2*step, ... and stops at the first probe
// that finds an occurrence of a secret. It returns the union [lo, hi) of the
// occurrences that probe finds and the position of the next probe; ok is
// false if no probe from p on finds one.
func (t *index) scan(s string, p int) (lo, hi, next int, ok bool) {
	filter, shift, step := t.filter, t.filterShift, t.step
	for ; p+gramLen <= len(s); p += step {
		h := load32(s, p) * hashMul
		if filter[h>>shift/64]&(1<<(h>>shift%64)) == 0 {
			continue
		}
		if lo, hi, ok = t.verify(s, p); ok {
			return lo, hi, p + step, true
		}
	}
	return 0, 0, p, false
}

// verify returns the union [lo, hi) of the occurrences in s that contain the
// window s[p:p+4] at an indexed offset, or ok == false if there are none.
// All such occurrences contain that window, so their union is one interval,
// and every one of them starts in (p-step, p].
func (t *index) verify(s string, p int) (lo, hi int, ok bool) {
	g := load32(s, p)
	b := (g * hashMul) >> t.bucketShift
	matchedOff := uint32(math.MaxUint32)
	for _, e := range t.entries[t.start[b]:t.start[b+1]] {
		// Entries with the same window and offset come longest first, and
		// an occurrence of a shorter one lies inside the longer match.
		if e.gram != g || e.off == matchedOff {
			continue
		}
		start := p - int(e.off)
		end := start + int(e.n)
		if start < 0 || end > len(s) {
			continue
		}
		if _, found := t.secrets[s[start:end]]; !found {
			continue
		}
		matchedOff = e.off
		if !ok {
			lo, hi, ok = start, end, true
			continue
		}
		lo, hi = min(lo, start), max(hi, end)
	}
	return lo, hi, ok
}

// each calls f with the position in New's argument of every secret equal to
// an occurrence in s that contains the window s[p:p+4] at an indexed offset,
// and returns false as soon as f does.
func (t *index) each(s string, p int, f func(i int) bool) bool {
	g := load32(s, p)
	b := (g * hashMul) >> t.bucketShift
	for _, e := range t.entries[t.start[b]:t.start[b+1]] {
		if e.gram != g {
			continue
		}
		start := p - int(e.off)
		end := start + int(e.n)
		if start < 0 || end > len(s) {
			continue
		}
		d, found := t.secrets[s[start:end]]
		if !found {
			continue
		}
		for i := t.first[d]; i >= 0; i = t.next[i] {
			if !f(int(i)) {
				return false
			}
		}
	}
	return true
}

// Replace returns s with every occurrence of every secret replaced by repl.
//
// Occurrences may overlap or touch: the union of all matched byte ranges is
// computed, and each maximal run of matched bytes is replaced by a single
// repl, so no fragment of any secret stays visible. For example, with secrets
// "abcdef" and "defghi", "xabcdefghiy" and "xabcdefdefghiy" both become
// "x" + repl + "y". The result is not scanned again, so a repl that itself
// contains a secret stays as given.
//
// If nothing matches, Replace returns s itself without allocating; otherwise
// it allocates the result. It makes one pass over s, hashing one 4-byte
// window every (shortest secret length minus 3) bytes, at most 64. A window
// that equals a window near the start of some secret costs one hash-set lookup
// per distinct (offset, length) pair of the secrets sharing it. For random
// tokens that is rare and cheap, so Replace takes time about linear in len(s);
// many secrets that share windows but differ in length (such as "aaaaaa",
// "aaaaaaa", ...) make it slower, though never worse than len(s) times the
// total length of the secrets.
func (m *Matcher) Replace(s, repl string) string {
	t := m.index()
	if t == nil || len(s) < t.minLen {
		return s
	}
	var b strings.Builder
	done := 0              // s[:done] has been written to b
	curLo, curHi := -1, -1 // pending merged range, not yet written
	for p := 0; ; {
		lo, hi, next, ok := t.scan(s, p)
		if !ok {
			break
		}
		p = next
		// Ranges arrive in increasing order of lo, so a range either extends
		// the pending one or starts after it ends.
		if curLo >= 0 && lo <= curHi {
			curHi = max(curHi, hi)
			continue
		}
		if curLo >= 0 {
			b.WriteString(s[done:curLo])
			b.WriteString(repl)
			done = curHi
		} else {
			b.Grow(len(s) + len(repl))
		}
		curLo, curHi = lo, hi
	}
	if curLo < 0 {
		return s
	}
	b.WriteString(s[done:curLo])
	b.WriteString(repl)
	b.WriteString(s[curHi:])
	return b.String()
}

// Contains reports whether s contains any secret. It does not allocate and
// stops at the first occurrence found.
func (m *Matcher) Contains(s string) bool {
	t := m.index()
	if t == nil || len(s) < t.minLen {
		return false
	}
	_, _, _, ok := t.scan(s, 0)
	return ok
}

// Find calls f for every occurrence of a secret in s, with the position in
// the slice given to [New] of that secret; a secret given several times is
// reported once per position. Occurrences are reported in about increasing
// order of position, each exactly once, overlapping ones included. Find
// stops as soon as f returns false. It does not allocate, does not retain
// s, and takes the time of [Matcher.Contains] plus that of the calls of f.
func (m *Matcher) Find(s string, f func(i int) bool) {
	t := m.index()
	if t == nil || len(s) < t.minLen {
		return
	}
	filter, shift, step := t.filter, t.filterShift, t.step
	for p := 0; p+gramLen <= len(s); p += step {
		h := load32(s, p) * hashMul
		if filter[h>>shift/64]&(1<<(h>>shift%64)) == 0 {
			continue
		}
		if !t.each(s, p, f) {
			return
		}
	}
}

// MinMatchLen returns the length of the shortest secret: text shorter than
// it contains none. It is 0 for the zero and the nil Matcher.
func (m *Matcher) MinMatchLen() int {
	if t := m.index(); t != nil {
		return t.minLen
	}
	return 0
}

// Len returns the number of distinct secrets; 0 for the zero and the nil
// Matcher.
func (m *Matcher) Len() int {
	if t := m.index(); t != nil {
		return len(t.secrets)
	}
	return 0
}

// index returns m's index, or nil if m matches nothing.
func (m *Matcher) index() *index {
	if m == nil || m.ref == nil {
		return nil
	}
	return m.ref.ix
}

// String describes m by its number of secrets, such as
// "redact.Matcher(3 secrets)", never showing a secret. It accepts a nil m.
func (m *Matcher) String() string {
	return "redact.Matcher(" + strconv.Itoa(m.Len()) + " secrets)"
}

// GoString is the same as [Matcher.String], so %#v shows no secret either.
func (m *Matcher) GoString() string { return m.String() }

// Format writes [Matcher.String] for every verb and flag, so that no fmt
// verb (%x, %q, %+v, ...) can reveal a secret.
func (m *Matcher) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(m.String())) }

// MarshalJSON encodes m as {"secrets":N}, where N is [Matcher.Len].
func (m *Matcher) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Secrets int `json:"secrets"`
	}{m.Len()})
}

// LogValue implements [slog.LogValuer], logging only the number of secrets.
func (m *Matcher) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("secrets", m.Len()))
}
