package dest

import (
	"net/netip"
	"strconv"
)

// Kind classifies a [Destination].
type Kind uint8

// The kinds of destination. The zero Kind is [KindNone].
const (
	// KindNone is the kind of the empty destination: the call names none.
	KindNone Kind = iota
	// KindURL is a network URL such as https://host/path.
	KindURL
	// KindFile is a local file path.
	KindFile
	// KindEmail is an e-mail address.
	KindEmail
	// KindOther is an opaque scheme://name resource such as db://orders.
	KindOther
)

// String returns "none", "url", "file", "email" or "other", and "invalid" for
// a value outside the declared constants.
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindURL:
		return "url"
	case KindFile:
		return "file"
	case KindEmail:
		return "email"
	case KindOther:
		return "other"
	}
	return "invalid"
}

// Destination is the canonical form of the place a tool call acts on. Values
// returned by [Parse] are immutable data; the zero value is the empty
// destination of [KindNone]. Which fields are set depends on Kind:
//
//	Kind       Scheme               Host                Port            Path                 User
//	KindNone   ""                   ""                  0               ""                   ""
//	KindURL    "https", "ssh", ...  host or IP literal  explicit/default "/"-rooted, cleaned  ""
//	KindFile   "file"               ""                  0               absolute, cleaned    ""
//	KindEmail  "mailto"             domain or IP        0               ""                   local part
//	KindOther  "db", "s3", ...      name                explicit or 0   "" or cleaned        ""
type Destination struct {
	// Kind says which form the destination has.
	Kind Kind
	// Scheme is the lower-case scheme: "https", "file", "mailto", "db", ...;
	// "" for KindNone.
	Scheme string
	// Host is the canonical host: lower-case ASCII with IDNA A-labels
	// ("xn--..."), no trailing dot, or the canonical text of IP (IPv6 without
	// brackets). For KindEmail it is the domain; for KindOther the name as
	// written (case preserved) unless it is an IP literal.
	Host string
	// Port is the explicit port or the scheme's default port; 0 if neither.
	Port int
	// Path is, for URLs, the cleaned, percent-encoding-normalised path ("/"
	// when empty); for files, the absolute cleaned path with no encoding; for
	// KindOther, the cleaned path or "" when there is none.
	Path string
	// User is the local part of an e-mail address, case preserved; ""
	// otherwise.
	User string
	// IP is valid when Host is an IP literal, however it was spelled.
	// IPv4-mapped IPv6 addresses are unmapped to IPv4; zones are dropped.
	IP netip.Addr
	// Private reports a destination that is not on the public Internet:
	// loopback, private, link-local, shared, multicast, reserved and other
	// special-purpose addresses, and local-only names such as localhost. See
	// the package documentation for the full list.
	Private bool
}

// String returns the canonical text of d, which [Parse] maps back to an equal
// Destination:
//
//	KindURL    scheme://host[:port]/path  (port only if not the default, IPv6 bracketed)
//	KindOther  scheme://name[:port][/path]
//	KindFile   /abs/path
//	KindEmail  user@host
//	KindNone   ""
//
// Query and fragment are never part of the canonical form.
func (d Destination) String() string {
	switch d.Kind {
	case KindFile:
		return d.Path
	case KindNone:
		return ""
	}
	return string(d.AppendText(make([]byte, 0, len(d.Scheme)+len(d.User)+len(d.Host)+len(d.Path)+11)))
}

// AppendText appends the canonical text of d (see [Destination.String]) to
// b and returns the extended buffer.
func (d Destination) AppendText(b []byte) []byte {
	switch d.Kind {
	case KindURL, KindOther:
		b = append(b, d.Scheme...)
		b = append(b, "://"...)
		if d.IP.Is6() {
			b = append(b, '[')
			b = append(b, d.Host...)
			b = append(b, ']')
		} else {
			b = append(b, d.Host...)
		}
		if d.Port != 0 && d.Port != defaultPort(d.Scheme) {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(d.Port), 10)
		}
		if d.Kind == KindURL && d.Path == "" {
			b = append(b, '/')
		} else {
			b = append(b, d.Path...)
		}
	case KindFile:
		b = append(b, d.Path...)
	case KindEmail:
		b = append(b, d.User...)
		b = append(b, '@')
		b = append(b, d.Host...)
	}
	return b
}

// defaultPort returns the default port of a scheme parsed as a network URL,
// or 0.
func defaultPort(scheme string) int {
	p, _ := networkScheme(scheme)
	return p
}

// networkScheme reports whether scheme names a network protocol whose
// authority is a host (parsed as KindURL) and returns its default port (0 if
// it has none).
func networkScheme(scheme string) (port int, ok bool) {
	switch scheme {
	case "http", "ws", "git+http", "dav":
		return 80, true
	case "https", "wss", "git+https", "davs":
		return 443, true
	case "ftp":
		return 21, true
	case "ftps":
		return 990, true
	case "ssh", "sftp", "scp", "git+ssh", "ssh+git", "svn+ssh":
		return 22, true
	case "telnet":
		return 23, true
	case "smtp":
		return 25, true
	case "dns":
		return 53, true
	case "gopher":
		return 70, true
	case "pop3":
		return 110, true
	case "nntp":
		return 119, true
	case "ntp":
		return 123, true
	case "imap":
		return 143, true
	case "snmp":
		return 161, true
	case "ldap":
		return 389, true
	case "smb", "cifs":
		return 445, true
	case "smtps":
		return 465, true
	case "rtsp":
		return 554, true
	case "ldaps":
		return 636, true
	case "imaps":
		return 993, true
	case "pop3s":
		return 995, true
	case "socks", "socks4", "socks4a", "socks5", "socks5h":
		return 1080, true
	case "mssql", "sqlserver":
		return 1433, true
	case "mqtt":
		return 1883, true
	case "rtmp":
		return 1935, true
	case "nfs":
		return 2049, true
	case "mysql":
		return 3306, true
	case "rdp":
		return 3389, true
	case "svn":
		return 3690, true
	case "nats":
		return 4222, true
	case "sip":
		return 5060, true
	case "sips":
		return 5061, true
	case "postgres", "postgresql":
		return 5432, true
	case "amqps":
		return 5671, true
	case "amqp":
		return 5672, true
	case "vnc":
		return 5900, true
	case "redis", "rediss":
		return 6379, true
	case "irc":
		return 6667, true
	case "ircs":
		return 6697, true
	case "mqtts":
		return 8883, true
	case "kafka":
		return 9092, true
	case "git":
		return 9418, true
	case "memcached":
		return 11211, true
	case "mongodb":
		return 27017, true
	case "mongodb+srv", "tcp", "udp", "grpc", "grpcs":
		return 0, true
	}
	return 0, false
}

// opaqueScheme reports the schemes whose authority names a resource rather
// than a network host: "scheme://name" is [KindOther] with the name as
// written (case preserved). The list is closed and documented in the package
// documentation; every other scheme with "//" has its host parsed like an
// http host.
func opaqueScheme(scheme string) bool {
	switch scheme {
	case "db", "table", "secret", "vault", "kv", "cache", "memory",
		"s3", "gs", "bucket", "queue", "topic",
		"issue", "ticket", "doc", "tool":
		return true
	}
	return false
}

// forbiddenScheme reports schemes that never name a destination and are
// rejected even in scheme://name form.
func forbiddenScheme(scheme string) bool {
	switch scheme {
	case "javascript", "vbscript", "data", "blob", "about", "view-source", "filesystem":
		return true
	}
	return false
}
