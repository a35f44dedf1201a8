package provenance

// Normalize exposes the normalisation to the tests' reference.
func Normalize(s string) string { return string(appendNormal(nil, s)) }

// IsWord exposes the word rune class to the tests' reference.
func IsWord(r rune) bool { return isWord(r) }

// SymbolsBothWays returns the symbols of s by the general path and, if s is
// ASCII, by the fast path.
func SymbolsBothWays(s string) (general, fast []uint16, ascii bool) {
	general = appendSymbols(nil, appendNormal(nil, s))
	fast, ascii = appendSymbolsASCII(nil, s)
	return general, fast, ascii
}

// Pending returns the bytes of text added and not indexed yet.
func (ix *Index) Pending() (untrusted, trusted int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.pendingU, ix.pendingT
}
