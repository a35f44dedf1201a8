package redact_test

import (
	"math/rand/v2"
	"strings"
	"unsafe"
)

// unsafeData returns the address of the bytes of s.
func unsafeData(s string) *byte { return unsafe.StringData(s) }

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// randomToken returns a random URL-safe base64 token of length n.
func randomToken(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = tokenAlphabet[rng.IntN(len(tokenAlphabet))]
	}
	return b
}

// textLines are the building blocks of realistic text: prose, JSON, log
// lines and shell output.
var textLines = []string{
	"The quick brown fox jumps over the lazy dog while the build runs again.\n",
	`{"level":"info","ts":"2024-05-01T12:00:00Z","msg":"request served","status":200,"path":"/api/v1/tasks"}` + "\n",
	"2024-05-01 12:00:01.123 INFO  [worker-3] fetched 128 records from upstream in 41ms\n",
	`{"id": 4821, "name": "deploy-staging", "labels": ["ci", "nightly"], "ok": true}` + "\n",
	"Error: connection refused (retrying in 2s) host=db.internal port=5432 attempt=3\n",
	"total 48\ndrwxr-xr-x  5 user staff  160 May  1 12:00 src\n-rw-r--r--  1 user staff 1024 May  1 11:59 go.mod\n",
	"Please summarise the following document and list the action items for the team.\n",
	"    at com.example.Service.handle(Service.java:142)\n",
}

// buildText returns about size bytes of realistic text with occurrences
// copies of secrets chosen by rng spread through it.
func buildText(rng *rand.Rand, size int, secrets [][]byte, occurrences int) string {
	var b strings.Builder
	b.Grow(size + 4096)
	every := 0
	if occurrences > 0 {
		every = size / occurrences
	}
	next := every / 2
	placed := 0
	for b.Len() < size {
		b.WriteString(textLines[rng.IntN(len(textLines))])
		if placed < occurrences && b.Len() >= next && len(secrets) > 0 {
			b.WriteString(`token="`)
			b.Write(secrets[rng.IntN(len(secrets))])
			b.WriteString("\"\n")
			placed++
			next += every
		}
	}
	return b.String()
}
