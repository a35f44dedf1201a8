package glob

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// Index finds which of a fixed set of tool-name patterns match a name, with
// the semantics of [Match], without trying every pattern.
//
// An Index is built once by [NewIndex] and is immutable afterwards: it is safe
// for concurrent use and its methods never block or panic. The zero Index and
// a nil *Index hold no patterns and match nothing.
//
// # How it works
//
// Every pattern is split at its stars into literals: the prefix before the
// first `*`, the suffix after the last one and the middle literals in
// between. Each pattern is filed under exactly one key:
//
//   - a pattern without `*` under itself, in a hash map;
//   - a pattern made only of stars (`*`, `**`) in a list that matches every
//     name;
//   - any other pattern under one of its literals: its prefix in a trie
//     walked along the name, its suffix in a trie walked backwards from the
//     end of the name, or a middle literal in an Aho–Corasick automaton that
//     finds every such literal occurring anywhere in the name. Of the
//     literals a pattern offers, the one the fewest distinct patterns offer in
//     the same position is chosen (then the longer, then prefix before suffix
//     before middle), so that patterns sharing a common prefix such as
//     "tool." but differing in a later literal are filed apart.
//
// A lookup walks the name through the map, the two tries and the automaton;
// the patterns filed under a key found in the name are the candidates, which
// are confirmed with [Match]. Identical patterns are stored once.
//
// # Cost
//
// [NewIndex] takes O(T + P·log P) time and O(T) memory for P patterns of
// total length T.
//
// [Index.AppendMatches] takes O(len(name) + C·M + R·log R) time, where C is
// the number of candidates, M the cost of one [Match] (at most
// O(len(pattern)·len(name)), linear for patterns with at most one `*`) and R
// the number of results. Candidates are the distinct patterns whose key occurs
// in the name where the key requires (as a prefix, as a suffix, anywhere, or
// as the whole name), each tried once however often its key occurs, so
// patterns whose key does not occur in the name cost nothing however many
// there are. A candidate that does not match is one whose key occurs in the
// name but whose other literals do not fit. A name of length L contains at
// most L prefix keys, L suffix keys and L·(L+1)/2 distinct middle keys, so C
// is at most that many keys times the largest number of distinct patterns
// filed under one key. A policy in which many distinct patterns share every
// one of their literals (for example `x.*a*b` and `x.*b*a`) therefore still
// lets a name containing those literals reach all of them; in typical
// policies, where each pattern names something specific, few patterns share a
// key.
//
// A lookup that reaches the middle-literal automaton uses scratch space of 4
// bytes per automaton node, kept in a [sync.Pool] between lookups.
type Index struct {
	n int // number of patterns given to NewIndex

	// uniq holds the distinct patterns; distinct pattern u occurs at the
	// indices orig[first[u]:first[u+1]] (ascending) of the patterns given
	// to NewIndex.
	uniq  []string
	first []int32
	orig  []int32

	always []int32          // indices of the patterns made only of stars, ascending
	exact  map[string]int32 // star-free pattern → distinct pattern
	prefix trie             // keyed by prefix, walked along the name
	suffix trie             // keyed by reversed suffix, walked backwards
	middle trie             // keyed by middle literal, an Aho–Corasick automaton
	marks  sync.Pool        // *marks sized for middle
}

// marks records which nodes of the middle automaton a lookup has already
// reported: node v was reported iff mark[v] == gen.
type marks struct {
	gen  uint32
	mark []uint32
}

// NewIndex returns an Index of patterns. The indices reported by
// [Index.AppendMatches] are positions in patterns; duplicates are allowed and
// each position is reported. Patterns are not validated (use [ValidPattern]
// when compiling a policy) and any string, including the empty pattern
// (which matches only the empty name), is matched as [Match] would. NewIndex
// copies what it needs: the caller may reuse patterns afterwards. A nil or
// empty patterns gives an Index that matches nothing.
func NewIndex(patterns []string) *Index {
	ix := &Index{n: len(patterns)}

	// Distinct patterns, numbered by first occurrence.
	ids := make(map[string]int32, len(patterns))
	of := make([]int32, len(patterns)) // distinct pattern of each position
	for i, p := range patterns {
		u, ok := ids[p]
		if !ok {
			u = int32(len(ix.uniq))
			ids[p] = u
			ix.uniq = append(ix.uniq, p)
		}
		of[i] = u
	}
	ix.first = make([]int32, len(ix.uniq)+1)
	for _, u := range of {
		ix.first[u+1]++
	}
	for u := range ix.uniq {
		ix.first[u+1] += ix.first[u]
	}
	ix.orig = make([]int32, len(patterns))
	next := slices.Clone(ix.first[:len(ix.uniq)])
	for i, u := range of {
		ix.orig[next[u]] = int32(i)
		next[u]++
	}

	// Count, for every (position, literal), how many distinct patterns
	// offer it, then file each pattern under its rarest one.
	type seen struct{ n, last int32 }
	counts := make(map[key]seen, 2*len(ix.uniq))
	for u, p := range ix.uniq {
		if !strings.Contains(p, "*") {
			continue
		}
		keys(p, func(k key) {
			if s := counts[k]; s.n == 0 || s.last != int32(u) {
				counts[k] = seen{s.n + 1, int32(u)}
			}
		})
	}
	var pre, suf, mid []trieKey
	for u, p := range ix.uniq {
		if !strings.Contains(p, "*") {
			if ix.exact == nil {
				ix.exact = make(map[string]int32)
			}
			ix.exact[p] = int32(u)
			continue
		}
		var best key
		var bestN int32
		keys(p, func(k key) {
			if n := counts[k].n; best.lit == "" || n < bestN ||
				n == bestN && (len(k.lit) > len(best.lit) || len(k.lit) == len(best.lit) && k.pos < best.pos) {
				best, bestN = k, n
			}
		})
		switch {
		case best.lit == "":
			ix.always = append(ix.always, ix.orig[ix.first[u]:ix.first[u+1]]...)
		case best.pos == atStart:
			pre = append(pre, trieKey{best.lit, int32(u)})
		case best.pos == atEnd:
			suf = append(suf, trieKey{reverse(best.lit), int32(u)})
		default:
			mid = append(mid, trieKey{best.lit, int32(u)})
		}
	}
	slices.Sort(ix.always)
	ix.prefix.build(pre)
	ix.suffix.build(suf)
	ix.middle.build(mid)
	ix.middle.link()
	if nodes := len(ix.middle.fail); nodes > 0 {
		ix.marks.New = func() any { return &marks{mark: make([]uint32, nodes)} }
	}
	return ix
}

// Len returns the number of patterns the Index was built from, counting
// duplicates; 0 for the zero Index and a nil *Index. It is safe for
// concurrent use.
func (ix *Index) Len() int {
	if ix == nil {
		return 0
	}
	return ix.n
}

// AppendMatches appends to dst the indices, in the patterns given to
// [NewIndex], of every pattern that name matches under [Match], in ascending
// order and without duplicates, and returns the extended slice. The elements
// of dst already present are left alone; dst may be nil.
//
// AppendMatches is safe for concurrent use and does not allocate (beyond
// occasional internal scratch space after a garbage collection) when dst has
// room for the result, so callers on a hot path should reuse dst:
//
//	buf = ix.AppendMatches(buf[:0], name)
//
// See [Index] for its cost.
func (ix *Index) AppendMatches(dst []int, name string) []int {
	dst, _ = ix.lookup(dst, name)
	return dst
}

// lookup implements AppendMatches and also returns the number of candidates
// it tried with Match.
func (ix *Index) lookup(dst []int, name string) ([]int, int) {
	if ix == nil {
		return dst, 0
	}
	start, tried := len(dst), 0
	for _, i := range ix.always {
		dst = append(dst, int(i))
	}
	if u, ok := ix.exact[name]; ok {
		dst = ix.appendOrig(dst, u)
	}
	try := func(ids []int32) {
		for _, u := range ids {
			tried++
			if Match(ix.uniq[u], name) {
				dst = ix.appendOrig(dst, u)
			}
		}
	}

	// Prefixes: the nodes along name from the root.
	for i, v := 0, int32(0); i < len(name); i++ {
		if v = ix.prefix.child(v, name[i]); v == 0 {
			break
		}
		try(ix.prefix.ids(v))
	}
	// Suffixes: the nodes along name from its end.
	for i, v := len(name)-1, int32(0); i >= 0; i-- {
		if v = ix.suffix.child(v, name[i]); v == 0 {
			break
		}
		try(ix.suffix.ids(v))
	}
	// Middle literals: every key ending at each position of name is on the
	// output chain of the automaton's state. A node already reported in
	// this lookup had its whole chain reported too, so the walk stops there.
	if t := &ix.middle; len(t.fail) > 0 {
		m := ix.marks.Get().(*marks)
		if m.gen++; m.gen == 0 {
			clear(m.mark)
			m.gen = 1
		}
		for i, s := 0, int32(0); i < len(name); i++ {
			s = t.step(s, name[i])
			v := s
			if !t.hasIDs(v) {
				v = t.out[v]
			}
			for v != 0 && m.mark[v] != m.gen {
				m.mark[v] = m.gen
				try(t.ids(v))
				v = t.out[v]
			}
		}
		ix.marks.Put(m)
	}
	slices.Sort(dst[start:])
	return dst, tried
}

// appendOrig appends the positions of distinct pattern u.
func (ix *Index) appendOrig(dst []int, u int32) []int {
	for _, i := range ix.orig[ix.first[u]:ix.first[u+1]] {
		dst = append(dst, int(i))
	}
	return dst
}

// Key positions, in order of preference between equally rare literals.
const (
	atStart = iota // the prefix before the first `*`
	atEnd          // the suffix after the last `*`
	inside         // a literal between two stars
)

// key is a literal of a pattern and where the pattern requires it.
type key struct {
	pos int
	lit string
}

// keys calls yield with every non-empty literal of pattern, which contains a
// `*`.
func keys(pattern string, yield func(key)) {
	i, j := strings.IndexByte(pattern, '*'), strings.LastIndexByte(pattern, '*')
	if i > 0 {
		yield(key{atStart, pattern[:i]})
	}
	if j < len(pattern)-1 {
		yield(key{atEnd, pattern[j+1:]})
	}
	for lit := range strings.SplitSeq(pattern[i+1:max(i+1, j)], "*") {
		if lit != "" {
			yield(key{inside, lit})
		}
	}
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// trieKey files distinct pattern id under string s.
type trieKey struct {
	s  string
	id int32
}

// trie is a byte trie over a set of keys, stored in compressed sparse rows.
// Node 0 is the root; since the root is nobody's child, 0 also means "no
// node". The zero trie is empty.
type trie struct {
	root      [256]int32 // children of the root by byte
	firstEdge []int32    // edges of node v: firstEdge[v]:firstEdge[v+1]
	edgeByte  []byte     // sorted within a node
	edgeNode  []int32
	firstID   []int32 // ids filed at node v: idAt[firstID[v]:firstID[v+1]]
	idAt      []int32
	// Aho–Corasick links, set by link: fail[v] is the node of the longest
	// proper suffix of v's string that is in the trie, out[v] the nearest
	// node with ids on v's fail chain (0 for none).
	fail, out []int32
}

// build fills an empty trie with keys, which it sorts.
func (t *trie) build(keys []trieKey) {
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, func(a, b trieKey) int {
		return cmp.Or(strings.Compare(a.s, b.s), cmp.Compare(a.id, b.id))
	})
	// Inserting keys in sorted order creates nodes depth-first, each node's
	// children in increasing byte order, and every key ending at a node
	// right after the node was created; so edges are grouped by parent with
	// a stable counting sort and ids come out grouped by node.
	type edge struct {
		from, to int32
		b        byte
	}
	var edges []edge
	path := []int32{0} // path[d] is the node of prev[:d]
	prev := ""
	nodes := int32(1)
	ends := make([]int32, len(keys))
	t.idAt = make([]int32, len(keys))
	for i, k := range keys {
		l := 0
		for l < len(prev) && l < len(k.s) && prev[l] == k.s[l] {
			l++
		}
		path = path[:l+1]
		for d := l; d < len(k.s); d++ {
			edges = append(edges, edge{path[d], nodes, k.s[d]})
			path = append(path, nodes)
			nodes++
		}
		ends[i] = path[len(k.s)]
		t.idAt[i] = k.id
		prev = k.s
	}
	t.firstEdge = make([]int32, nodes+1)
	for _, e := range edges {
		t.firstEdge[e.from+1]++
	}
	for v := range nodes {
		t.firstEdge[v+1] += t.firstEdge[v]
	}
	t.edgeByte = make([]byte, len(edges))
	t.edgeNode = make([]int32, len(edges))
	next := slices.Clone(t.firstEdge[:nodes])
	for _, e := range edges {
		t.edgeByte[next[e.from]] = e.b
		t.edgeNode[next[e.from]] = e.to
		next[e.from]++
		if e.from == 0 {
			t.root[e.b] = e.to
		}
	}
	t.firstID = make([]int32, nodes+1)
	for _, v := range ends {
		t.firstID[v+1]++
	}
	for v := range nodes {
		t.firstID[v+1] += t.firstID[v]
	}
}

// child returns the child of v along byte c, or 0.
func (t *trie) child(v int32, c byte) int32 {
	if v == 0 {
		return t.root[c]
	}
	lo, hi := t.firstEdge[v], t.firstEdge[v+1]
	for hi-lo > 8 {
		mid := int32(uint32(lo+hi) >> 1)
		if t.edgeByte[mid] < c {
			lo = mid + 1
		} else {
			hi = mid + 1 // the first byte >= c is at mid or before
		}
	}
	for ; lo < hi; lo++ {
		if b := t.edgeByte[lo]; b >= c {
			if b == c {
				return t.edgeNode[lo]
			}
			break
		}
	}
	return 0
}

// ids returns the ids filed at v.
func (t *trie) ids(v int32) []int32 {
	return t.idAt[t.firstID[v]:t.firstID[v+1]]
}

func (t *trie) hasIDs(v int32) bool {
	return t.firstID[v] != t.firstID[v+1]
}

// link sets the Aho–Corasick fail and out links, visiting nodes breadth
// first so that every node's fail link is set before its children's.
func (t *trie) link() {
	if len(t.firstEdge) == 0 {
		return
	}
	n := len(t.firstEdge) - 1
	t.fail = make([]int32, n)
	t.out = make([]int32, n)
	queue := make([]int32, 1, n)
	for i := 0; i < len(queue); i++ {
		v := queue[i]
		for e := t.firstEdge[v]; e < t.firstEdge[v+1]; e++ {
			c, u := t.edgeByte[e], t.edgeNode[e]
			queue = append(queue, u)
			if v == 0 {
				continue // fail and out stay 0
			}
			f := t.step(t.fail[v], c)
			t.fail[u] = f
			if t.hasIDs(f) {
				t.out[u] = f
			} else {
				t.out[u] = t.out[f]
			}
		}
	}
}

// step returns the automaton's state after reading c in state s: the node
// of the longest suffix of s's string followed by c that is in the trie.
func (t *trie) step(s int32, c byte) int32 {
	for {
		if u := t.child(s, c); u != 0 || s == 0 {
			return u
		}
		s = t.fail[s]
	}
}
