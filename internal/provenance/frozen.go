package provenance

import "slices"

// frozen is an automaton that no longer grows, in compact form. Each state
// other than the initial one is a block in edges: a header whose to field
// holds the number of edges, then the edges sorted by symbol. A state is
// named by the position of its block, so following a transition reads one
// contiguous block, usually one cache line. Position 0 holds no block and
// means "no transition"; the initial state keeps its dense table.
type frozen struct {
	edges []frozenEdge
	root  [numSyms]int32
}

type frozenEdge struct {
	sym uint16
	to  int32
}

// freeze returns the compact form of a and wipes a.
func (a *automaton) freeze() *frozen {
	// pos[s] is the position of state s's block.
	pos := make([]int32, len(a.length))
	n := 1
	for s := 1; s < len(a.length); s++ {
		pos[s] = int32(n)
		n += 1 + a.degree(int32(s))
	}
	f := &frozen{edges: make([]frozenEdge, 1, n)}
	for c, t := range a.root {
		f.root[c] = pos[t]
	}
	for s := 1; s < len(a.length); s++ {
		head := len(f.edges)
		f.edges = append(f.edges, frozenEdge{})
		for e := a.head[s]; e >= 0; e = a.next[e] {
			f.edges = append(f.edges, frozenEdge{sym: a.sym[e], to: pos[a.to[e]]})
		}
		es := f.edges[head+1:]
		f.edges[head].to = int32(len(es))
		slices.SortFunc(es, func(x, y frozenEdge) int { return int(x.sym) - int(y.sym) })
	}
	clear(pos)
	a.wipe()
	return f
}

// contains reports whether syms is a substring of the automaton's symbols.
// It reads one block per symbol.
func (f *frozen) contains(syms []uint16) bool {
	if len(syms) == 0 {
		return true
	}
	s := f.root[syms[0]]
	for _, c := range syms[1:] {
		if s == 0 {
			return false
		}
		n := f.edges[s].to
		es := f.edges[s+1 : s+1+n]
		s = 0
		if len(es) <= 8 {
			for _, e := range es {
				if e.sym >= c {
					if e.sym == c {
						s = e.to
					}
					break
				}
			}
			continue
		}
		lo, hi := 0, len(es)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if es[m].sym < c {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo < len(es) && es[lo].sym == c {
			s = es[lo].to
		}
	}
	return s != 0
}

// size returns the bytes f holds.
func (f *frozen) size() int { return 8*cap(f.edges) + 4*numSyms }

// wipe zeroes and releases everything f holds.
func (f *frozen) wipe() {
	clear(f.edges[:cap(f.edges)])
	clear(f.root[:])
	*f = frozen{}
}
