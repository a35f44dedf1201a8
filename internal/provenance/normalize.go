package provenance

import (
	"unicode"
	"unicode/utf8"
)

// Symbols of the automaton: a normalised byte in the low 8 bits, and flags
// that say whether the byte begins a word or ends one. A word is a maximal
// run of word runes ([isWord]); the flags of a byte depend only on the runes
// next to it, so a value spelled as symbols occurs in a text spelled as
// symbols exactly where the value occurs delimited by non-word runes or the
// edges of the text.
const (
	flagStart = 1 << 8 // first byte of the first rune of a word
	flagEnd   = 1 << 9 // last byte of the last rune of a word
	numSyms   = 1 << 10
	// symSep separates texts inside one automaton. 0xFF never occurs in
	// normalised text, which is valid UTF-8, so no value spans two texts.
	symSep = 0xFF
)

// isWord reports whether r belongs to words: letters, marks, decimal
// digits and '_'.
func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// fold returns the case-folded form of r: ASCII letters in lower case, other
// runes as the lower case of their upper case (Unicode simple case mapping,
// so that for example 'ſ' and the Kelvin sign fold with 's' and 'k').
func fold(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(unicode.ToUpper(r))
}

// appendNormal appends the normalised form of s to dst and returns it:
// case folded ([fold]), every run of white space (Unicode White_Space)
// replaced by one ' ', leading and trailing white space removed, format
// characters (category Cf, such as zero-width spaces and soft hyphens)
// removed, and each byte that is not part of valid UTF-8 replaced by U+FFFD.
// The result is valid UTF-8.
func appendNormal(dst []byte, s string) []byte {
	space := false // a white space run is pending
	start := len(dst)
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		if c < utf8.RuneSelf {
			r = rune(c)
			i++
		} else {
			var size int
			r, size = utf8.DecodeRuneInString(s[i:])
			i += size
		}
		if r < utf8.RuneSelf {
			switch r {
			case ' ', '\t', '\n', '\v', '\f', '\r':
				space = true
				continue
			}
		} else if unicode.IsSpace(r) {
			space = true
			continue
		} else if unicode.Is(unicode.Cf, r) {
			continue
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		dst = utf8.AppendRune(dst, fold(r))
	}
	return dst
}

// appendSymbols appends the symbols of normalised text b to dst and returns
// it: each byte with [flagStart] on the first byte of a word and [flagEnd] on
// the last. The edges of b count as non-word runes.
func appendSymbols(dst []uint16, b []byte) []uint16 {
	prevWord := false
	lastWordByte := -1 // position in dst of the last byte of the previous rune, if a word rune
	for i := 0; i < len(b); {
		r, size := rune(b[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b[i:])
		}
		w := isWord(r)
		if !w && prevWord {
			dst[lastWordByte] |= flagEnd
		}
		first := len(dst)
		for _, c := range b[i : i+size] {
			dst = append(dst, uint16(c))
		}
		if w && !prevWord {
			dst[first] |= flagStart
		}
		lastWordByte = len(dst) - 1
		prevWord = w
		i += size
	}
	if prevWord {
		dst[lastWordByte] |= flagEnd
	}
	return dst
}

// trimTail returns the longest prefix of normalised text b of at most n
// bytes that does not end inside a word or a rune; a word the limit cuts is
// dropped whole, so the cut never makes a word's prefix look like a word.
func trimTail(b []byte, n int) []byte {
	if n >= len(b) {
		return b
	}
	// b[n] is the first byte dropped. Step back to a rune start.
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	r, _ := utf8.DecodeRune(b[n:])
	if !isWord(r) {
		return b[:n]
	}
	for n > 0 {
		r, size := utf8.DecodeLastRune(b[:n])
		if !isWord(r) {
			break
		}
		n -= size
	}
	return b[:n]
}

// trimHead returns the longest suffix of normalised text b of at most n
// bytes that does not start inside a word or a rune.
func trimHead(b []byte, n int) []byte {
	if n >= len(b) {
		return b
	}
	i := len(b) - n // b[i-1] is the last byte dropped
	for i < len(b) && !utf8.RuneStart(b[i]) {
		i++
	}
	if i == len(b) {
		return b[i:]
	}
	r, _ := utf8.DecodeLastRune(b[:i])
	if !isWord(r) {
		return b[i:]
	}
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if !isWord(r) {
			break
		}
		i += size
	}
	return b[i:]
}

// appendSymbolsASCII appends the symbols of the normalised form of s to dst
// in one pass, as appendSymbols(dst, appendNormal(nil, s)) does, if s is
// ASCII; otherwise it returns dst unchanged and false.
func appendSymbolsASCII(dst []uint16, s string) ([]uint16, bool) {
	start := len(dst)
	space, prevWord := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			return dst[:start], false
		case c == ' ' || '\t' <= c && c <= '\r':
			space = true
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if space && len(dst) > start {
			if prevWord {
				dst[len(dst)-1] |= flagEnd
			}
			dst = append(dst, ' ')
			prevWord = false
		}
		space = false
		w := c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z'
		sym := uint16(c)
		if w && !prevWord {
			sym |= flagStart
		}
		if !w && prevWord {
			dst[len(dst)-1] |= flagEnd
		}
		dst = append(dst, sym)
		prevWord = w
	}
	if prevWord {
		dst[len(dst)-1] |= flagEnd
	}
	return dst, true
}
