package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Forms returns secret followed by the encodings of it that text commonly
// carries, each at most once and each at least [MinLen] bytes long, so that
// a [Matcher] built from the forms of every secret finds a secret however it
// was written:
//
//   - hexadecimal, lower and upper case (as by encoding/hex or %x);
//   - percent-encoding as by url.QueryEscape and url.PathEscape, and with
//     every byte escaped, each with upper and lower case hex digits;
//   - base64 in the standard and the URL alphabet, padded or not, also when
//     the secret is part of a longer encoded text, such as an HTTP Basic
//     credential base64("user:" + secret) (see below);
//   - the body of a JSON string, with and without HTML escaping, for a
//     secret that is valid UTF-8.
//
// Base64 encodes 3 bytes as 4 characters, so the characters that encode a
// secret inside a longer text depend on its offset modulo 3 and, at both
// ends, on the neighbouring bytes. For each of the three offsets Forms keeps
// only the characters determined by the secret alone. Those always occur in
// the encoding of any text that contains the secret, and a secret of n bytes
// still leaves about 4n/3-2 of them (7 for n = 6). Replacing them can leave
// at most one character at each end that carries a few bits of the secret.
//
// Forms returns nil for a secret shorter than [MinLen]. Every form is a new
// slice the caller owns (and should clear when done with it).
func Forms(secret []byte) [][]byte {
	if len(secret) < MinLen {
		return nil
	}
	forms := make([][]byte, 0, 16)
	add := func(f []byte) {
		if len(f) < MinLen {
			return
		}
		for _, g := range forms {
			if bytes.Equal(f, g) {
				clear(f)
				return
			}
		}
		forms = append(forms, f)
	}
	add(bytes.Clone(secret))

	// add clears a duplicate form: derive every variant before adding.
	h := make([]byte, hex.EncodedLen(len(secret)))
	hex.Encode(h, secret)
	upper := bytes.ToUpper(h)
	add(h)
	add(upper)

	for _, esc := range []func(string) string{url.QueryEscape, url.PathEscape, escapeAll} {
		e := []byte(esc(string(secret)))
		lower := lowerEscapes(bytes.Clone(e))
		add(e)
		add(lower)
	}

	// The characters of base64(prefix + secret) that do not depend on the
	// prefix or on what follows, for prefix lengths 0, 1 and 2 (mod 3).
	buf := make([]byte, len(secret)+2)
	for k := range 3 {
		clear(buf[:k])
		copy(buf[k:], secret)
		in := buf[:k+len(secret)]
		enc := make([]byte, base64.StdEncoding.EncodedLen(len(in)))
		base64.StdEncoding.Encode(enc, in)
		lo, hi := (8*k+5)/6, 8*len(in)/6
		core := bytes.Clone(enc[lo:hi])
		clear(enc)
		urlCore := bytes.Clone(core)
		for i, c := range urlCore {
			switch c {
			case '+':
				urlCore[i] = '-'
			case '/':
				urlCore[i] = '_'
			}
		}
		add(core)
		add(urlCore)
	}
	clear(buf)

	// JSON replaces invalid UTF-8 by U+FFFD, losing the secret; for valid
	// UTF-8 the escaping of each character does not depend on neighbours.
	for _, html := range []bool{true, false} {
		if !utf8.Valid(secret) {
			break
		}
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(html)
		if err := e.Encode(string(secret)); err == nil {
			j := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
			add(bytes.Clone(j[1 : len(j)-1]))
		}
		clear(b.Bytes())
	}
	return forms
}

// escapeAll percent-encodes every byte of s with upper case hex digits.
func escapeAll(s string) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(3 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteByte('%')
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

// lowerEscapes turns the hex digits of every %XX escape of p to lower case,
// in place.
func lowerEscapes(p []byte) []byte {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && isHex(p[i+1]) && isHex(p[i+2]) {
			p[i+1], p[i+2] = toLowerASCII(p[i+1]), toLowerASCII(p[i+2])
			i += 2
		}
	}
	return p
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Unescape decodes every valid %XX escape of s (either case of hex digit)
// and leaves everything else, '+' and malformed escapes included, as it is.
// It returns s itself, without allocating, when s has no valid escape.
// Unlike url.PathUnescape it never fails, so text that is only partly
// percent-encoded (or encoded by hand, in mixed case) still decodes.
func Unescape(s string) string {
	i := 0
	for ; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			break
		}
	}
	if i+2 >= len(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for i < len(s) {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 3
			continue
		}
		b = append(b, s[i])
		i++
	}
	return string(b)
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
