package provenance

// Normalize exposes the normalisation to the tests' reference.
func Normalize(s string) string { return string(appendNormal(nil, s)) }

// IsWord exposes the word rune class to the tests' reference.
func IsWord(r rune) bool { return isWord(r) }
