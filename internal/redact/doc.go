// Package redact scrubs live secret values out of arbitrary text.
//
// A secrets broker hands out short-lived values (API tokens, passwords) and
// must remove every one of them from tool output, model context and logs
// before that text is stored. Many values can be live at once and the text
// can be large, so redaction is one pass over the text for the whole set of
// secrets rather than one search per secret.
//
// # Sections
//
//   - Building a matcher: [New], [MinLen], [ErrShortSecret]
//   - Scrubbing text: [Matcher.Replace], [Matcher.Contains]
//   - Finding which secret occurs: [Matcher.Find]
//   - Encoded secrets: [Forms], [Unescape]
//   - Printing a matcher: [Matcher.String] and friends
//
// # Building a matcher
//
// [New] compiles a fixed set of secrets, given as arbitrary bytes (they need
// not be UTF-8), into an immutable [Matcher]. Build a new Matcher whenever the
// set of live secrets changes and publish it, for example through an
// atomic.Pointer; readers keep using the old one until they load the new one.
// Every secret must be at least [MinLen] bytes long: shorter values would
// redact ordinary words and cannot be kept secret anyway. The error for a
// short secret names it by index and length, never by content.
//
// # Scrubbing text
//
// [Matcher.Replace] replaces every occurrence of every secret. Occurrences
// that overlap or touch are merged first, and each maximal run of matched
// bytes becomes one replacement string, so a secret that overlaps another
// cannot leave a fragment of either behind. Text without secrets is returned
// as is, without allocating. [Matcher.Contains] only reports whether any
// secret occurs.
//
// Both sample the text: the 4-byte windows at the first few offsets of each
// secret are indexed, and the text is probed only every (shortest secret
// length minus 3) bytes, so 20-byte tokens cost one hash-filter test per 17
// bytes of text. Each probe the filter lets through fixes where a candidate
// secret would start; one hash-set lookup per candidate length then decides
// whether it is a secret.
//
// # Finding which secret occurs
//
// [Matcher.Find] reports every occurrence with the position of its secret
// in the list given to [New], so a caller can keep data about each secret
// (who owns it, where it may be sent) in a parallel slice.
//
// # Encoded secrets
//
// Text rarely carries a secret only as is: URLs percent-encode it, HTTP
// Basic credentials and many APIs base64-encode it, dumps hex-encode it.
// [Forms] lists the encodings of one secret worth looking for (hex,
// percent-encoding, base64 in both alphabets at the three alignments a
// secret can have inside longer encoded text, JSON string escaping). Build
// the matcher from the forms of every secret, once, and each scan finds
// all of them in the same single pass. [Unescape] leniently decodes
// percent-escapes for callers that also want to catch mixed spellings the
// precomputed forms cannot enumerate.
//
// # Printing a matcher
//
// A [Matcher] holds copies of the secrets. Its String, GoString, Format,
// MarshalJSON and LogValue methods show only the number of secrets, and a
// copied Matcher value keeps its state behind a pointer, so printing one with
// any fmt verb or logging it with log/slog reveals nothing.
//
// # Usage
//
//	m, err := redact.New([][]byte{token, password})
//	if err != nil { ... }
//	clean := m.Replace(toolOutput, "[REDACTED]")
//	if m.Contains(line) { ... }
package redact
