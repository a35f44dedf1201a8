// Package glob matches tool names, host names and file paths against the
// patterns written in taskguard policies.
//
// All three matchers are pure functions of their arguments: they are safe for
// concurrent use, never block, never panic and do not allocate for typical
// inputs, so they can run once per rule on the authorization hot path.
//
// # Sections
//
//   - Tool names: [Match] and [ValidPattern]
//   - Many tool-name patterns at once: [Index]
//   - Hosts: [Host]
//   - Paths: [Within]
//
// # Tool names
//
// [Match] is a minimal glob: `*` matches any run of bytes, including the
// empty run and dots; every other byte is literal and the comparison is
// case-sensitive. There is no `?`, no character class and no escaping, so a
// pattern means exactly what it looks like. [Match] does not validate its
// pattern; policies should call [ValidPattern] once, when they are compiled,
// which rejects the empty pattern and any byte outside [A-Za-z0-9._*/:-].
//
// # Many tool-name patterns
//
// A policy with many rules should not try every pattern on every call, since
// callers choose the tool names. [NewIndex] compiles a set of patterns once;
// [Index.AppendMatches] then reports the patterns a name matches, exactly as
// [Match] would, at a cost that grows with the length of the name and the
// number of patterns sharing a literal that occurs in it, not with the number
// of patterns. See [Index] for how and at what cost.
//
// # Hosts
//
// [Host] compares host names label by label, ignoring ASCII case and one
// trailing dot on either side. A `*` label stands for one or more whole labels,
// never for part of a label and never for zero labels:
//
//	*.github.com       matches api.github.com and a.b.github.com,
//	                   not github.com and not evilgithub.com
//	*.s3.*.amazonaws.com matches b.s3.eu-west-1.amazonaws.com
//	github.com         matches github.com only
//
// Hosts are expected in the canonical form produced by the dest package
// (lower-case ASCII, IDNA A-labels, IP literals in their shortest form). To keep
// deny rules from being sidestepped by a pattern that can never match a
// canonical host, [Host] rejects patterns that are not written canonically:
// empty patterns or labels, `*` inside a label, characters other than letters,
// digits, '-', '_' and '*' (':' is allowed only in an IPv6 literal), a
// star-free pattern whose last label is numeric but which is not a dotted-quad
// IPv4 address, and IPv6 literals that are bracketed, zoned, IPv4-mapped or
// not in their shortest form. An empty host matches nothing; a host with empty
// labels is an error.
//
// # Paths
//
// [Within] reports whether a path is a root or lies below it. Both are cleaned
// with [path.Clean] first, so "/workspace/../etc" is not within "/workspace",
// and the comparison is by whole path elements, so "/workspace2" is not within
// "/workspace". Relative paths are never within anything.
//
// # Usage
//
//	if err := glob.ValidPattern("github.*"); err != nil { ... }
//	glob.Match("github.*", "github.create_issue")        // true
//	ix := glob.NewIndex([]string{"github.*", "*.read"})
//	buf = ix.AppendMatches(buf[:0], "github.read")        // [0 1]
//	ok, err := glob.Host("*.github.com", d.Host)           // d from dest.Parse
//	glob.Within("/workspace/src/main.go", "/workspace")    // true
package glob
