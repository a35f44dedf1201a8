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

// networkPorts maps each scheme that names a network protocol whose
// authority is a host (parsed as KindURL) to its default port (0 if it has
// none).
var networkPorts = map[string]int{
	"http":        80,
	"ws":          80,
	"git+http":    80,
	"dav":         80,
	"https":       443,
	"wss":         443,
	"git+https":   443,
	"davs":        443,
	"ftp":         21,
	"ftps":        990,
	"ssh":         22,
	"sftp":        22,
	"scp":         22,
	"git+ssh":     22,
	"ssh+git":     22,
	"svn+ssh":     22,
	"telnet":      23,
	"smtp":        25,
	"dns":         53,
	"gopher":      70,
	"pop3":        110,
	"nntp":        119,
	"ntp":         123,
	"imap":        143,
	"snmp":        161,
	"ldap":        389,
	"smb":         445,
	"cifs":        445,
	"smtps":       465,
	"rtsp":        554,
	"ldaps":       636,
	"imaps":       993,
	"pop3s":       995,
	"socks":       1080,
	"socks4":      1080,
	"socks4a":     1080,
	"socks5":      1080,
	"socks5h":     1080,
	"mssql":       1433,
	"sqlserver":   1433,
	"mqtt":        1883,
	"rtmp":        1935,
	"nfs":         2049,
	"mysql":       3306,
	"rdp":         3389,
	"svn":         3690,
	"nats":        4222,
	"sip":         5060,
	"sips":        5061,
	"postgres":    5432,
	"postgresql":  5432,
	"amqps":       5671,
	"amqp":        5672,
	"vnc":         5900,
	"redis":       6379,
	"rediss":      6379,
	"irc":         6667,
	"ircs":        6697,
	"mqtts":       8883,
	"kafka":       9092,
	"git":         9418,
	"memcached":   11211,
	"mongodb":     27017,
	"mongodb+srv": 0,
	"tcp":         0,
	"udp":         0,
	"grpc":        0,
	"grpcs":       0,
}

// networkScheme reports whether scheme names a network protocol whose
// authority is a host (parsed as KindURL) and returns its default port (0 if
// it has none).
func networkScheme(scheme string) (port int, ok bool) {
	port, ok = networkPorts[scheme]
	return port, ok
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
