// Package provenance indexes the text a task observed so that policies can
// ask where a value came from: whether an IBAN, an email address, a host or
// a name occurs in untrusted content (tool output, web pages, files) or in
// trusted content (the system prompt, the user's request).
//
// # Sections
//
//   - Recording text: [New], [Index.Add], [DefaultMaxBytes]
//   - Asking about a value: [Index.Seen]
//   - Bounded memory: [Index.Truncated], [Index.Size]
//   - Ending a task: [Index.Wipe]
//
// # Matching
//
// Matching is exact on a normalised form, applied alike to observed text
// and to queried values:
//
//   - letters are case folded: ASCII letters to lower case, other runes to
//     the lower case of their upper case (Unicode simple case mapping);
//   - every run of white space (Unicode White_Space, including no-break
//     spaces and line breaks) becomes one ' ', and leading and trailing
//     white space is removed, so "DE89 3704\u00a00044" in a text matches the
//     value "de89  3704 0044";
//   - format characters (Unicode category Cf: zero-width spaces, soft
//     hyphens, direction marks) are removed, so they cannot hide a value;
//   - bytes that are not valid UTF-8 become U+FFFD.
//
// A value matches only as a whole: on each side it must be delimited by an
// edge of a text or by a non-word rune, where word runes are letters, marks,
// decimal digits and '_'. The check applies only where the value itself
// begins or ends with a word rune. So "DE89370400440532013000" is not seen
// in "XDE89370400440532013000" or "DE8937040044053201300099", and
// "bob@example.com" is not seen in "jbob@example.com" or
// "bob@example.community", but is seen in "<bob@example.com>" and at the
// end of a sentence. Texts given to separate [Index.Add] calls are separate:
// no value is seen across two of them.
//
// Provenance proves that a value was, or was not, seen verbatim up to this
// normalisation. It does not see a value paraphrased, translated, split or
// re-encoded (base64, percent-encoding, spelled out).
//
// # Design and complexity
//
// Text is normalised and spelled as symbols: each byte, plus a flag on the
// first byte of every word and one on the last. A value delimited as above
// occurs in the text exactly when its own symbols (the edges of the value
// counting as word boundaries) occur as a substring of the text's symbols,
// so whole-word matching is a plain substring test. Each group of texts is
// indexed by a suffix automaton, the smallest automaton that accepts exactly
// the substrings of its text. [Index.Seen] follows one transition per byte
// of the value in each automaton: its time is linear in the value's length
// and independent of how much text was observed. [Index.Add] extends the
// automaton online in amortised constant time per byte.
//
// An automaton cannot forget its oldest text, so untrusted text is kept in
// a ring of automata of about a quarter of the cap each; when the cap is
// exceeded the oldest one is dropped whole. Seen thus walks a handful of
// automata (usually four or five, at most nine), and most walks end after a
// few symbols. Once a newer automaton takes over, the older one is
// compacted: the edges of each state stored contiguously and sorted, one
// memory block per transition. Trusted text has one automaton. On an Index
// holding 1 MiB of mail-like text, Seen of a 20 to 40 byte value takes
// about 0.6 to 0.8 µs and does not allocate. Add only records the text:
// the automata index it at the next lookup, 3 to 6 MB/s, so a task whose
// policy never asks where a value came from does not pay for indexing.
//
// # Bounded memory
//
// Each Index caps normalised untrusted text at the bytes given to [New]
// ([DefaultMaxBytes], 1 MiB, by default) and trusted text at a quarter of
// that. The automata take about 20 to 60 bytes of memory per byte of text,
// reported by [Index.Size]: a chunk is compacted once a newer one takes
// over. Beyond the untrusted cap the oldest untrusted
// text is dropped and [Index.Truncated] turns true, so that rules can fail
// closed; beyond the trusted cap new trusted text is ignored (see
// [Index.Add]). The Index never retains the strings given to it.
//
// # Usage
//
//	ix := provenance.New(0)
//	ix.Add(userRequest, true)
//	ix.Add(toolOutput, false)
//	if ix.Seen(iban, false) && !ix.Seen(iban, true) { ... deny ... }
//	if ix.Truncated() { ... fail closed ... }
//	ix.Wipe() // task end
package provenance
