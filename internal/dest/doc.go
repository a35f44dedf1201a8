// Package dest canonicalises the destination of a tool call — the URL, file,
// e-mail address or named resource it acts on — so that taskguard policies
// see one spelling per destination and cannot be bypassed by writing the same
// place differently.
//
// [Parse] is called once per authorization check and fails closed: anything
// unparseable or ambiguous is an [*Error] (wrapping [ErrInvalid]) that says
// what was wrong, for example
//
//	dest: "http://1.2.3.4.5/": invalid IPv4 address "1.2.3.4.5"
//
// and callers deny on error. Parse never panics. [Destination.String] prints
// the canonical form, which Parse maps back to the same Destination.
// [ParseText] returns the Destination and its canonical text together; for
// an input that is already canonical the text is the input itself, and an
// already canonical http or https URL is parsed in one pass without
// allocating. [Resolve] resolves symbolic links in file destinations.
//
// # Sections
//
//   - Recognising the form
//   - URLs
//   - Hosts
//   - IP literals
//   - Private destinations
//   - Files
//   - Files and symbolic links
//   - E-mail
//   - Opaque names
//   - Text that is always rejected
//   - Errors
//
// # Usage
//
//	d, err := dest.Parse("https://API.GitHub.com./repos/x/../y", "/workspace")
//	if err != nil {
//		return deny(err)
//	}
//	// d.Kind == dest.KindURL, d.Host == "api.github.com", d.Port == 443,
//	// d.Path == "/repos/y", d.String() == "https://api.github.com/repos/y"
//
// # Recognising the form
//
// Parse looks at raw in this order:
//
//  1. "" is the empty destination (KindNone, nil error).
//  2. A leading '/' is an absolute file path. A leading "//" is rejected: it
//     is a network-path URL reference to some tools and a file to others.
//  3. A scheme ("[A-Za-z][A-Za-z0-9+.-]*:") selects mailto:, file: or a
//     scheme://authority form, described below. Single-letter schemes are
//     rejected because "C:\x" and "C:/x" are Windows drive paths.
//  4. Text with an '@' and no '/' is a bare e-mail address.
//  5. "~..." (home-relative) and "\..." (Windows/UNC) paths are rejected.
//  6. ".", "..", "./..." and "../..." are relative file paths, and so is
//     any other text containing a '/' — unless its first element looks like
//     a host ("example.com/x", "host:80/x", "a@b/c"), which is rejected as
//     ambiguous because some tools would fetch it as a URL; write
//     "./example.com/x" for a file.
//  7. Anything else, such as a bare "example.com" or "README.md", is rejected
//     with a message listing the accepted forms.
//
// # URLs
//
// "scheme://authority/path?query#fragment" with any scheme that is not
// opaque (see Opaque names) is [KindURL], and its host is parsed exactly as
// an http host: "redis://0x7f.1/", "ftp://2130706433",
// "gopher://[::ffff:127.0.0.1]" and "foo+bar://169.254.169.254" are all IP
// addresses with Private set. Well-known protocols (http, https, ws, wss,
// ftp, ssh, sftp, git, ldap, smtp, imap, redis, postgres, mysql, mongodb,
// amqp, mqtt, socks5 and others; see the list in dest.go) have a default
// port; other schemes have none. The scheme is lower-cased.
//
//   - Userinfo ("user@" or "user:pass@" before the host) is rejected, which
//     defeats "https://github.com@evil.com/". This includes ssh://git@host
//     and postgres://user:pass@host: credentials do not belong in a
//     destination.
//   - A backslash in the authority or path is rejected (browsers treat it as
//     '/'); so is any whitespace.
//   - The host is canonicalised as described under Hosts; an empty host is an
//     error.
//   - The port must be 1-65535 in decimal (leading zeros allowed); ":" with no
//     digits is an error. Without a port, Port is the scheme's default: http
//     and ws 80, https and wss 443, ftp 21, and the usual port of the other
//     network schemes (ssh 22, postgres 5432, ...; 0 when there is none).
//   - The query and the fragment are dropped; they are not part of the
//     destination. Their percent-escapes must still be valid.
//
// The canonical path is RFC 3986 normalised and then cleaned:
//
//   - Percent-escapes of bytes that may appear literally in a path —
//     unreserved characters, the sub-delimiters !$&'()*+,= (not ';'), ':'
//     and '@' — are decoded, including "%2E" (to '.'), because servers
//     decode them before routing. Every other byte, including non-ASCII
//     bytes, is percent-encoded with upper-case hex, so Path is ASCII and
//     unambiguous ("é" becomes "%C3%A9").
//   - Dot segments are then resolved as by [path.Clean], never above "/"
//     ("/a/%2e%2e/b" is "/b", "/../x" is "/x"), repeated slashes collapse
//     and a trailing slash is dropped except for the root. An empty path is
//     "/".
//   - Rejected, because common servers (nginx, Apache, Tomcat and Spring,
//     Node, Go net/http) route these spellings differently and a rule could
//     see one place while the server serves another: invalid escapes ("%zz",
//     "%4"); encoded control characters ("%00", "%0a"); a backslash, raw or
//     encoded ("%5C"); an encoded slash ("%2F", a separator to some servers
//     and part of a segment to others); an encoded percent sign ("%25", so
//     "%252e" and every other double encoding); ';' raw or encoded ("%3B":
//     servlet containers strip ";jsessionid=..." path parameters and resolve
//     "/..;/", others do not); escapes that are not UTF-8 (overlong forms
//     such as "%C0%AE"); compatibility forms of path syntax, which
//     servers that fold Unicode turn into '.', '/', '\', ';', '%', '?' or
//     '#' ("%EF%BC%8F" fullwidth solidus, "․", "‥", "？"); and "." or ".."
//     segments in a path that also has empty segments ("/a//../b": /b to
//     servers that merge slashes, /a to others).
//
// # Hosts
//
// URL hosts and e-mail domains are canonicalised the same way. URL hosts are
// first percent-decoded ("%31%32%37.0.0.1" is 127.0.0.1); e-mail domains in
// a mailto: URL were decoded with the whole address. Then:
//
//   - "[...]" is an IPv6 literal (see IP literals).
//   - Trailing dots are removed ("example.com." is example.com); an empty
//     label anywhere else (".a.com", "a..b") is an error.
//   - The name is converted with IDNA (UTS #46 mapping for lookup,
//     non-transitional, STD3 ASCII rules, hyphen and joiner checks, Bidi rule,
//     DNS length limits — the strict Lookup profile of golang.org/x/net/idna).
//     Upper case is lowered, fullwidth and other compatibility forms are
//     mapped ("１２７．０．０．１" becomes 127.0.0.1), and Unicode labels become
//     their "xn--" A-labels, so a homoglyph host such as "аpple.com" with a
//     Cyrillic 'а' is xn--pple-43d.com and never apple.com. Existing "xn--"
//     labels must be valid punycode. A host IDNA rejects is an error; that
//     includes '_' and labels with "--" in the third and fourth position
//     that are not valid A-labels (such as "r3---sn-abc").
//   - Lower-case ASCII letter-digit-hyphen hosts skip IDNA: the result is
//     the same and Parse does not allocate.
//   - The canonical host never depends on the Go toolchain. x/net/idna
//     selects its Unicode tables by Go version (Unicode 15.0.0 before Go
//     1.27, 17.0.0 from it), and about 11,000 code points map or validate
//     differently between them: U+1E9E capital sharp s becomes "ss" or "ß",
//     U+00A8 diaeresis is rejected or mapped to " ̈", and code points
//     assigned after Unicode 15 are rejected or accepted. A host (or an
//     A-label decoding to a code point) in that set is an error with either
//     toolchain. TestIDNAStable pins the behaviour of every other code point.
//
// # IP literals
//
// Following the WHATWG URL host parser, a host whose last label is a number
// (all decimal digits, or "0x" and hex digits) must be an IPv4 address, or
// Parse fails with `invalid IPv4 address "..."`. Each of the one to four
// parts may be decimal, octal (leading 0) or hex (0x); the last part fills
// the remaining bytes. So 2130706433, 0x7f000001, 0177.0.0.1, 0x7f.0.0.1,
// 127.1 and 127.0.1 are all 127.0.0.1, while 1.2.3.4.5, 256.0.0.1 and 08.1
// are errors. Bracketed hosts are IPv6 ([::1]); IPv4 in brackets is an error.
// IPv4-mapped addresses ([::ffff:127.0.0.1], [::ffff:7f00:1]) are unmapped to
// IPv4, and zones ([fe80::1%25eth0]) are dropped. Host is then the canonical
// text of [Destination.IP] (IPv6 without brackets, which String adds).
//
// # Private destinations
//
// [Destination.Private] marks destinations that are not on the public
// Internet, so policies can keep agents away from internal services and
// cloud metadata endpoints. It is true for:
//
//   - IPv4: 0.0.0.0/8, 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16 (link-local
//     and the 169.254.169.254 metadata service), 172.16/12, 192.0.0/24,
//     192.0.2/24, 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24,
//     224/4 (multicast) and 240/4 (reserved, including 255.255.255.255).
//   - IPv6: ::, ::1, fe80::/10, fec0::/10, fc00::/7, ff00::/8, 2001:db8::/32,
//     100::/64 and 64:ff9b:1::/48; and addresses embedding a private IPv4
//     address: IPv4-compatible ::a.b.c.d, IPv4-mapped (already unmapped),
//     IPv4-translated ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16
//     and Teredo 2001::/32 (server or client address).
//   - Names: any single-label name (resolved through search domains, LLMNR
//     or mDNS, such as "localhost", "intranet" or GCE's "metadata"); the
//     names default hosts files map to loopback or local addresses
//     (localhost4, localhost6, ip6-localhost, ip6-loopback, ip6-localnet,
//     ip6-mcastprefix, ip6-allnodes, ip6-allrouters, ip6-allhosts, their
//     ipv6- spellings, systemd's _gateway and _outbound, loopback); and
//     names under localhost, localdomain, localdomain4, localdomain6
//     (localhost.localdomain, localhost6.localdomain6), local, internal
//     (which covers metadata.google.internal), home.arpa, and the
//     conventionally private lan, home, corp, intranet and private. Names
//     are compared after canonicalisation, so case and trailing dots do not
//     matter, and the same names are Private as e-mail domains.
//
// Private says nothing about where a public name resolves; policies that
// must stop DNS rebinding need to check resolved addresses too.
//
// # Files
//
// Files are [KindFile] with Scheme "file" and Path an absolute path cleaned
// by [path.Clean] (".." never goes above "/"). Path holds the raw bytes, not
// percent-encoded.
//
//   - "/abs/path" is taken literally: no percent-decoding ("%2e%2e" is a
//     directory name here), and spaces are allowed. A backslash is rejected.
//   - "file:///path" and "file://localhost/path" are percent-decoded, so
//     "file:///workspace/%2e%2e/etc/shadow" is /etc/shadow. Any other host
//     ("file://server/x") is rejected, as are a query or fragment (encode
//     '?' and '#'), decoded control characters and a decoded backslash.
//   - Relative paths are joined to workdir, which must be absolute and is
//     cleaned too ("../x" with workdir /workspace is /x). Without a workdir
//     they are an error.
//
// # Files and symbolic links
//
// Parse never touches the file system, so a path through a symbolic link
// ("/workspace/link/passwd" with link pointing to /etc) is judged by its
// text. [Resolve] resolves the links in the existing part of a file path and
// returns the real path, which policies should see instead. A check cannot
// close the race with a later open (time of check to time of use): the link
// can change between Resolve and the tool opening the file. The guarded
// opener in authz/fsguard closes it by opening through an [os.Root] confined
// to the allowed directory, so a link or ".." that escapes fails at open
// time; Resolve makes the decision match what the open will reach in the
// common case and fails closed on loops, dangling links and permission
// errors.
//
// # E-mail
//
// "mailto:user@host" (the address percent-decoded, its query dropped) and
// bare "user@host" are [KindEmail] with Scheme
// "mailto", User the local part with its case preserved, and Host the domain
// canonicalised like a URL host (so IP literals and Private apply). Exactly
// one '@' is required, and both sides must be non-empty. The local part must
// be an unquoted dot-atom of ASCII letters, digits and .-_+=&'*^`{|}~$;
// quoted local parts and '%', '!', '/', '?' and '#' (mail-routing tricks or
// URL syntax) are rejected, as are address literals such as
// "user@[192.0.2.1]" and several recipients (a second '@', ',' or ';').
//
// A mailto: query may only hold "subject" and "body" fields (names
// percent-decoded and compared ignoring case). Anything that could add a
// recipient or a header is rejected: "to", "cc", "bcc" and every other field
// name in any spelling, a value that decodes to CR, LF or another control
// character, a second '?', ';', a fragment, and empty or nameless fields.
//
// # Opaque names
//
// "scheme://name[:port][/path]" is [KindOther] for the opaque schemes, whose
// authority names a resource rather than a network host: db, table, secret,
// vault, kv, cache, memory, s3, gs, bucket, queue, topic, issue,
// ticket, doc and tool. Every other scheme is parsed as a URL (see URLs).
// javascript:, data:, vbscript:, blob:, about:, view-source: and
// filesystem: are always rejected, and any other scheme without "//" is
// rejected.
//
//   - Host is the name as written, case preserved (compare names with
//     glob.Host, which ignores case), after decoding percent-escapes and
//     removing trailing dots; it must be non-empty and consist of ASCII
//     letters, digits, '-', '.', '_' and '~'. Userinfo is rejected as for
//     URLs.
//   - A name that is IP-like is never a name: a bracketed IPv6 address, or a
//     name whose last label is a number (decimal digits, or "0x" and hex
//     digits, as WHATWG defines for http hosts) becomes that IP address,
//     parsed exactly like an http host, so "db://127.1" and
//     "issue://1234" (0.0.4.210) are addresses with Private set, and an
//     IP-like name that is not a valid address ("db://1.2.3.4.5",
//     "db://orders.1") is an error. The loopback names listed under Private
//     destinations ("db://localhost", "db://ip6-localhost") are Private.
//   - Port is the explicit port or 0. Path is canonicalised like a URL path,
//     except that an empty or "/" path is "".
//
// # Text that is always rejected
//
// Whatever the form: ASCII and C1 control characters (NUL, CR, LF, TAB, ...),
// invalid UTF-8, Unicode line and paragraph separators, and invisible format
// characters (category Cf: bidi overrides, zero-width joiners, BOM).
// Whitespace is allowed only in file paths.
//
// # Errors
//
// [Error.Input] and the error message repeat the input with any URL
// userinfo, query and fragment replaced by "REDACTED", because they may hold
// credentials; the message shortens inputs longer than 256 bytes.
package dest
