package provenance

import (
	"sync"
	"sync/atomic"
)

const (
	// DefaultMaxBytes is the cap on untrusted text that [New] uses when
	// given a cap of zero or less, and that the zero [Index] uses.
	DefaultMaxBytes = 1 << 20

	// generations is the number of chunks the untrusted cap is divided
	// into: eviction drops one chunk, the oldest, at a time.
	generations = 4
)

// Index records the text a task observed and answers whether a value occurs
// in it, separately for trusted and untrusted text.
//
// An Index is safe for concurrent use. [Index.Seen], [Index.Truncated] and
// [Index.Size] take a read lock and never wait for each other;
// [Index.Add] and [Index.Wipe] take the write lock. None of the methods
// calls out of the package or blocks otherwise.
//
// The zero Index is empty and usable, with the default caps of
// [DefaultMaxBytes]. A nil *Index holds nothing: Seen and Truncated report
// false, Size 0, and Add and Wipe do nothing.
type Index struct {
	mu sync.RWMutex
	// The fields below are guarded by mu.
	maxBytes  int // cap on untrusted text; 0 means DefaultMaxBytes
	untrusted []*chunk
	trusted   *chunk
	truncated bool
	wiped     bool

	// pending holds normalised texts that Add recorded and the automata
	// have not indexed yet, oldest first; pendingU and pendingT are
	// their untrusted and trusted bytes (separators included).
	pending            []pendingText
	pendingU, pendingT int
	// hasPending is set while pending is not empty, so that Seen can
	// skip the write lock.
	hasPending atomic.Bool
}

// pendingText is a normalised text waiting to be indexed.
type pendingText struct {
	norm    []byte
	trusted bool
}

// chunk is one automaton over texts separated by symSep: growing (a) while
// it is the newest untrusted chunk or the trusted one, frozen (f) once a
// newer chunk took over.
type chunk struct {
	a     *automaton
	f     *frozen
	bytes int // normalised text bytes added, separators included
}

func (c *chunk) contains(syms []uint16) bool {
	if c.f != nil {
		return c.f.contains(syms)
	}
	return c.a.contains(syms)
}

func (c *chunk) size() int {
	if c.f != nil {
		return c.f.size()
	}
	return c.a.size()
}

func (c *chunk) wipe() {
	if c.f != nil {
		c.f.wipe()
	}
	if c.a != nil {
		c.a.wipe()
	}
}

// New returns an empty Index that holds at most maxBytes bytes of
// normalised untrusted text and maxBytes/4 bytes of normalised trusted text,
// or [DefaultMaxBytes] and DefaultMaxBytes/4 when maxBytes <= 0.
//
// The memory an Index holds is about 20 to 60 bytes per byte of text (see
// [Index.Size]; 26 on a MiB of mail-like text, 45 MiB measured with both
// default caps full of it), and up to about 75 for random binary data, so
// the default caps bound it at about 50 MiB for text and 95 MiB at worst,
// reached only by a task that observes that much. Choose a smaller cap for
// many concurrent tasks.
func New(maxBytes int) *Index {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Index{maxBytes: maxBytes}
}

// caps returns the caps on untrusted and trusted text. Requires mu held.
func (ix *Index) caps() (untrusted, trusted int) {
	m := ix.maxBytes
	if m <= 0 {
		m = DefaultMaxBytes
	}
	return m, m / 4
}

// Add records text as observed, trusted or not. Text is normalised as
// described in the package documentation; text that normalises to nothing
// is ignored, and so is every Add after [Index.Wipe]. Add does not retain
// text.
//
// Untrusted text beyond the cap evicts the oldest untrusted text, a quarter
// of the cap at a time, and sets [Index.Truncated]; a single text longer
// than the whole cap keeps only its end. Trusted text beyond its cap is
// ignored instead, so the earliest trusted text (typically the system
// prompt and the user's request) is kept; dropping trusted text can only
// turn a fromTrusted answer from true to false. A cut never splits a word.
//
// Add only normalises and copies the text (hundreds of MB/s): indexing is
// deferred until a value is looked up ([Index.Seen], or [Index.Flush]), so
// a task whose policy never asks where a value came from does not pay for
// it, and text evicted before any lookup is never indexed. Pending text is
// bounded by the same caps. Indexing runs about 3 to 6 MB/s for text (16
// ms for 64 KiB) and down to 1 MB/s for random binary data, under the
// write lock.
func (ix *Index) Add(text string, trusted bool) {
	if ix == nil {
		return
	}
	norm := appendNormal(nil, text)
	if len(norm) == 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.wiped {
		clear(norm)
		return
	}
	maxU, maxT := ix.caps()
	if trusted {
		trustedBytes := 0
		if ix.trusted != nil {
			trustedBytes = ix.trusted.bytes
		}
		if trustedBytes+ix.pendingT >= maxT {
			// The texts before it fill the cap: indexing would
			// ignore it too.
			clear(norm)
			return
		}
		ix.pendingT += len(norm) + 1
	} else {
		ix.pendingU += len(norm) + 1
		// Drop the oldest pending untrusted texts that the newer ones
		// alone would evict from the automata anyway.
		for ix.pendingU > maxU {
			i := ix.oldestPendingUntrusted()
			if i < 0 {
				break // the new text alone is over the cap: indexing trims it
			}
			ix.pendingU -= len(ix.pending[i].norm) + 1
			clear(ix.pending[i].norm)
			ix.pending = append(ix.pending[:i], ix.pending[i+1:]...)
			ix.truncated = true
		}
	}
	ix.pending = append(ix.pending, pendingText{norm: norm, trusted: trusted})
	ix.hasPending.Store(true)
}

// oldestPendingUntrusted returns the index of the oldest pending untrusted
// text, or -1. Requires mu held.
func (ix *Index) oldestPendingUntrusted() int {
	for i, p := range ix.pending {
		if !p.trusted {
			return i
		}
	}
	return -1
}

// Flush indexes the text that [Index.Add] recorded and the automata have
// not indexed yet. Seen does it by itself; call Flush to pay for indexing
// at a time of your choosing (after observing text, before a latency
// sensitive lookup).
func (ix *Index) Flush() {
	if ix == nil || !ix.hasPending.Load() {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.flushLocked()
}

// flushLocked indexes pending text. Requires mu held for writing.
func (ix *Index) flushLocked() {
	maxU, maxT := ix.caps()
	for i, p := range ix.pending {
		if p.trusted {
			ix.addTrusted(p.norm, maxT)
		} else {
			ix.addUntrusted(p.norm, maxU)
		}
		clear(p.norm)
		ix.pending[i] = pendingText{}
	}
	ix.pending = ix.pending[:0]
	ix.pendingU, ix.pendingT = 0, 0
	ix.hasPending.Store(false)
}

// dropPendingLocked zeroes and drops pending text. Requires mu held.
func (ix *Index) dropPendingLocked() {
	for i, p := range ix.pending {
		clear(p.norm)
		ix.pending[i] = pendingText{}
	}
	ix.pending = nil
	ix.pendingU, ix.pendingT = 0, 0
	ix.hasPending.Store(false)
}

// addTrusted requires mu held.
func (ix *Index) addTrusted(norm []byte, limit int) {
	if ix.trusted == nil {
		ix.trusted = &chunk{a: newAutomaton()}
	}
	room := limit - ix.trusted.bytes - 1 // one byte for the separator
	if room <= 0 {
		return
	}
	if norm = trimTail(norm, room); len(norm) > 0 {
		ix.trusted.add(norm)
	}
}

// addUntrusted requires mu held.
func (ix *Index) addUntrusted(norm []byte, limit int) {
	if len(norm)+1 > limit {
		norm = trimHead(norm, limit-1)
		ix.truncated = true
		if len(norm) == 0 {
			return
		}
	}
	chunkCap := max(limit/generations, 1)
	n := len(ix.untrusted)
	if n == 0 || ix.untrusted[n-1].bytes > 0 && ix.untrusted[n-1].bytes+len(norm)+1 > chunkCap {
		if n > 0 {
			prev := ix.untrusted[n-1]
			prev.f, prev.a = prev.a.freeze(), nil
		}
		ix.untrusted = append(ix.untrusted, &chunk{a: newAutomaton()})
		n++
	}
	total := len(norm) + 1
	for _, c := range ix.untrusted {
		total += c.bytes
	}
	for total > limit && len(ix.untrusted) > 1 {
		old := ix.untrusted[0]
		total -= old.bytes
		old.wipe()
		ix.untrusted[0] = nil
		ix.untrusted = ix.untrusted[1:]
		ix.truncated = true
	}
	ix.untrusted[len(ix.untrusted)-1].add(norm)
}

// add appends normalised text and a separator.
func (c *chunk) add(norm []byte) {
	syms := appendSymbols(make([]uint16, 0, len(norm)+1), norm)
	syms = append(syms, symSep)
	c.a.reserve(len(syms))
	for _, s := range syms {
		c.a.extend(s)
	}
	c.bytes += len(syms)
	clear(syms)
}

// Seen reports whether value, normalised, occurs in the text observed with
// the given trust, delimited on each side by a non-word rune or an edge of
// a text (see the package documentation). A value that normalises to
// nothing is never seen.
//
// Seen takes time linear in len(value) and independent of how much text
// was observed, times the number of untrusted chunks (usually 4 or 5, at most 9). It does
// not allocate for values up to 256 bytes.
func (ix *Index) Seen(value string, trusted bool) bool {
	if ix == nil {
		return false
	}
	var sbuf [256]uint16
	syms, ok := appendSymbolsASCII(sbuf[:0], value)
	if !ok {
		var nbuf [256]byte
		syms = appendSymbols(sbuf[:0], appendNormal(nbuf[:0], value))
	}
	if len(syms) == 0 {
		return false
	}
	ix.Flush()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if trusted {
		return ix.trusted != nil && ix.trusted.contains(syms)
	}
	for i := len(ix.untrusted) - 1; i >= 0; i-- {
		if ix.untrusted[i].contains(syms) {
			return true
		}
	}
	return false
}

// Truncated reports whether untrusted text was dropped to respect the cap,
// so that [Index.Seen] with trusted == false may miss a value the task did
// observe. Rules that deny on untrusted provenance should fail closed when
// it is true. Truncated stays true until the Index is wiped, and is false
// after [Index.Wipe].
func (ix *Index) Truncated() bool {
	if ix == nil {
		return false
	}
	// Indexing pending text may evict: flush so the answer covers
	// everything added so far.
	ix.Flush()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.truncated
}

// Wipe zeroes and drops everything the Index holds, typically when its
// task ends. Afterwards Seen reports false, Size 0, and Add does nothing.
// Wipe is idempotent.
func (ix *Index) Wipe() {
	if ix == nil {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i, c := range ix.untrusted {
		c.wipe()
		ix.untrusted[i] = nil
	}
	ix.untrusted = nil
	if ix.trusted != nil {
		ix.trusted.wipe()
		ix.trusted = nil
	}
	ix.dropPendingLocked()
	ix.truncated = false
	ix.wiped = true
}

// Size returns the number of bytes of memory the Index holds for its
// automata, trusted and untrusted: about 40 to 60 per byte of normalised
// text in the newest untrusted chunk and the trusted one, still growing, and
// about 20 in older chunks, kept in a compact form.
func (ix *Index) Size() int {
	if ix == nil {
		return 0
	}
	ix.Flush()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := 0
	for _, c := range ix.untrusted {
		n += c.size()
	}
	if ix.trusted != nil {
		n += ix.trusted.size()
	}
	return n
}
