package dest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error [Parse] returns, so callers can test
// for a rejected destination with [errors.Is].
var ErrInvalid = errors.New("dest: invalid destination")

// Error is the error type [Parse] returns. Its message has the form
//
//	dest: "<input>": <reason>
//
// for example `dest: "http://1.2.3.4.5/": invalid IPv4 address "1.2.3.4.5"`.
// An Error unwraps to [ErrInvalid].
type Error struct {
	// Input is the rejected destination with any userinfo, query and fragment
	// of a URL replaced by "REDACTED", since those parts can carry
	// credentials.
	Input string
	// Reason says what was wrong, in words meant for the policy author.
	Reason string
}

// maxQuoted bounds how much of Input an error message repeats.
const maxQuoted = 256

// Error returns the message described on [Error]. Inputs longer than 256
// bytes are shortened in the message (not in the Input field).
func (e *Error) Error() string {
	in := e.Input
	if len(in) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && !utf8.RuneStart(in[cut]) {
			cut--
		}
		in = in[:cut] + "..."
	}
	return "dest: " + strconv.Quote(in) + ": " + e.Reason
}

// Unwrap returns [ErrInvalid].
func (e *Error) Unwrap() error { return ErrInvalid }

// fail builds the error for raw. It is only reached on the error path, so it
// may allocate freely.
func fail(raw string, format string, args ...any) (Destination, error) {
	return Destination{}, &Error{Input: redact(raw), Reason: fmt.Sprintf(format, args...)}
}

// redact hides the parts of a URL that commonly carry secrets: everything
// before the last '@' that precedes the query (userinfo, and with it anything
// a confused parser might take for userinfo), and the query and fragment.
// mailto: keeps its local part. Inputs without a scheme are file paths or
// e-mail addresses and are returned unchanged.
func redact(raw string) string {
	scheme, rest, ok := splitScheme(raw)
	if !ok || len(scheme) == 1 {
		return raw
	}
	prefix, tail := raw[:len(scheme)+1], ""
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest, tail = rest[:q], rest[q:q+1]+"REDACTED"
	}
	if !strings.EqualFold(scheme, "mailto") {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			start := 0
			if strings.HasPrefix(rest, "//") {
				start = 2
			}
			if at >= start {
				rest = rest[:start] + "REDACTED" + rest[at:]
			}
		}
	}
	return prefix + rest + tail
}
