package provenance

// wideDeg is the number of edges beyond which a state's edges are also
// entered in the hash table.
const wideDeg = 4

// automaton is the suffix automaton of a sequence of symbols: the smallest
// deterministic automaton accepting exactly its substrings. It has fewer
// than 2n states and 3n transitions for n symbols and is built online in
// amortised constant time per symbol (Blumer et al., 1985).
//
// State 0 is the initial state; no transition leads back to it, so a target
// of 0 means "no transition". The transitions of state 0 are a dense table;
// those of the other states are singly linked lists of edges. Nearly every
// state has one or two; the edges of a state with more than [wideDeg] are
// also entered in a hash table, so that finding a transition takes constant
// time.
type automaton struct {
	// length[s] is the length of the longest string reaching state s,
	// link[s] its suffix link (-1 for state 0) and head[s] its first edge
	// (-1 for none).
	length, link, head []int32
	// deg[s] is the number of edges of s, saturated at 255.
	deg []uint8
	// wide maps s<<16|c to the edge of s on c, for states with more than
	// wideDeg edges.
	wide map[uint64]int32
	// Edge e goes on symbol sym[e] to state to[e]; next[e] is the next edge
	// of the same state or -1.
	sym      []uint16
	to, next []int32
	root     [numSyms]int32
	last     int32
	n        int // symbols added
}

func newAutomaton() *automaton {
	a := &automaton{}
	a.length = append(a.length, 0)
	a.link = append(a.link, -1)
	a.head = append(a.head, -1)
	a.deg = append(a.deg, 0)
	return a
}

// step returns the state reached from s on c, or 0.
func (a *automaton) step(s int32, c uint16) int32 {
	if s == 0 {
		return a.root[c]
	}
	if e := a.edge(s, c); e >= 0 {
		return a.to[e]
	}
	return 0
}

// edge returns the edge of s != 0 on c, or -1.
func (a *automaton) edge(s int32, c uint16) int32 {
	if a.deg[s] > wideDeg {
		if e, ok := a.wide[uint64(s)<<16|uint64(c)]; ok {
			return e
		}
		return -1
	}
	for e := a.head[s]; e >= 0; e = a.next[e] {
		if a.sym[e] == c {
			return e
		}
	}
	return -1
}

// degree returns the number of edges of s != 0.
func (a *automaton) degree(s int32) int {
	n := 0
	for e := a.head[s]; e >= 0; e = a.next[e] {
		n++
	}
	return n
}

// addEdge adds the transition s -c-> t; s has none on c yet.
func (a *automaton) addEdge(s int32, c uint16, t int32) {
	if s == 0 {
		a.root[c] = t
		return
	}
	a.sym = append(a.sym, c)
	a.to = append(a.to, t)
	a.next = append(a.next, a.head[s])
	e := int32(len(a.to) - 1)
	a.head[s] = e
	switch d := a.deg[s]; {
	case d < wideDeg:
	case d == wideDeg:
		if a.wide == nil {
			a.wide = make(map[uint64]int32)
		}
		for e := a.head[s]; e >= 0; e = a.next[e] {
			a.wide[uint64(s)<<16|uint64(a.sym[e])] = e
		}
	default:
		a.wide[uint64(s)<<16|uint64(c)] = e
	}
	if a.deg[s] < 255 {
		a.deg[s]++
	}
}

// redirect changes the transition s -c-> (anything) to lead to t.
func (a *automaton) redirect(s int32, c uint16, t int32) {
	if s == 0 {
		a.root[c] = t
		return
	}
	if e := a.edge(s, c); e >= 0 {
		a.to[e] = t
	}
}

func (a *automaton) newState(length, link int32) int32 {
	a.length = append(a.length, length)
	a.link = append(a.link, link)
	a.head = append(a.head, -1)
	a.deg = append(a.deg, 0)
	return int32(len(a.length) - 1)
}

// reserve makes room for about n more symbols, so that adding a text
// grows each array at most once.
func (a *automaton) reserve(n int) {
	states, edges := n*17/10+16, n*21/10+16
	a.length = grow(a.length, states)
	a.link = grow(a.link, states)
	a.head = grow(a.head, states)
	a.deg = grow(a.deg, states)
	a.sym = grow(a.sym, edges)
	a.to = grow(a.to, edges)
	a.next = grow(a.next, edges)
}

// grow returns s with room for n more elements, growing it by half at
// least. The old array is zeroed: it holds data derived from observed text.
func grow[S ~[]E, E any](s S, n int) S {
	if cap(s)-len(s) >= n {
		return s
	}
	t := make(S, len(s), max(cap(s)+cap(s)/2, len(s)+n))
	copy(t, s)
	clear(s[:cap(s)])
	return t
}

// extend appends symbol c.
func (a *automaton) extend(c uint16) {
	a.n++
	cur := a.newState(a.length[a.last]+1, 0)
	p := a.last
	for p >= 0 && a.step(p, c) == 0 {
		a.addEdge(p, c, cur)
		p = a.link[p]
	}
	a.last = cur
	if p < 0 {
		return
	}
	q := a.step(p, c)
	if a.length[p]+1 == a.length[q] {
		a.link[cur] = q
		return
	}
	clone := a.newState(a.length[p]+1, a.link[q])
	for e := a.head[q]; e >= 0; e = a.next[e] {
		a.addEdge(clone, a.sym[e], a.to[e])
	}
	for p >= 0 && a.step(p, c) == q {
		a.redirect(p, c, clone)
		p = a.link[p]
	}
	a.link[q] = clone
	a.link[cur] = clone
}

// contains reports whether syms is a substring of the symbols added. It
// takes one transition per symbol.
func (a *automaton) contains(syms []uint16) bool {
	s := int32(0)
	for _, c := range syms {
		if s = a.step(s, c); s == 0 {
			return false
		}
	}
	return true
}

// size returns the bytes the automaton holds.
func (a *automaton) size() int {
	return 4*(cap(a.length)+cap(a.link)+cap(a.head)+cap(a.to)+cap(a.next)) + 2*cap(a.sym) + cap(a.deg) + 4*numSyms + 24*len(a.wide)
}

// wipe zeroes and releases everything the automaton holds.
func (a *automaton) wipe() {
	clear(a.length[:cap(a.length)])
	clear(a.link[:cap(a.link)])
	clear(a.head[:cap(a.head)])
	clear(a.sym[:cap(a.sym)])
	clear(a.to[:cap(a.to)])
	clear(a.next[:cap(a.next)])
	clear(a.deg[:cap(a.deg)])
	clear(a.root[:])
	clear(a.wide)
	*a = automaton{}
}
