package redact_test

import (
	"errors"
	"fmt"

	"github.com/taskguard/taskguard/internal/redact"
)

func ExampleMatcher_Replace() {
	m, err := redact.New([][]byte{
		[]byte("ghp_4f9XQ2mZk81LrT"),
		[]byte("hunter2!"),
		[]byte("abcdef"),
		[]byte("defghi"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Replace("curl -H 'Authorization: token ghp_4f9XQ2mZk81LrT' -u bob:hunter2!", "[REDACTED]"))
	// Overlapping occurrences become one replacement.
	fmt.Println(m.Replace("xabcdefghiy", "[REDACTED]"))
	fmt.Println(m.Contains("nothing secret here"))
	fmt.Println(m)
	// Output:
	// curl -H 'Authorization: token [REDACTED]' -u bob:[REDACTED]
	// x[REDACTED]y
	// false
	// redact.Matcher(4 secrets)
}

func ExampleNew_shortSecret() {
	_, err := redact.New([][]byte{[]byte("long-enough-token"), []byte("pw1")})
	fmt.Println(err)
	fmt.Println(errors.Is(err, redact.ErrShortSecret))
	// Output:
	// redact: secret too short: secret 1 has length 3, want at least 6
	// true
}
