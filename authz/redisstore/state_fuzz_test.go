package redisstore

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// encodeState writes st as the scripts do (see the key layout).
func encodeState(st authz.TaskState) string {
	var b strings.Builder
	put := func(s string) { b.WriteString(strconv.Itoa(len(s)) + ":" + s) }
	put(st.ID)
	if !st.Known {
		put("0")
		return b.String()
	}
	flag := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	put("1")
	put(flag(st.Ended))
	put(strconv.FormatUint(st.TaintVersion, 10))
	put(strconv.Itoa(int(st.Taint.Sensitivity)))
	put(flag(st.Taint.Untrusted))
	put(strconv.Itoa(len(st.Taint.Sources)))
	for _, s := range st.Taint.Sources {
		put(s)
	}
	return b.String()
}

var stateSeeds = []authz.TaskState{
	{ID: "task_A"},
	{ID: "task_B", Known: true},
	{ID: "task_C", Known: true, Ended: true, TaintVersion: 7,
		Taint: authz.Taint{Sensitivity: authz.Restricted, Untrusted: true, Sources: []string{"a", "", "12:x\x00\xff"}}},
}

func TestDecodeState(t *testing.T) {
	t.Parallel()
	for _, st := range stateSeeds {
		got, err := decodeState(encodeState(st))
		require.NoError(t, err)
		assert.Equal(t, st, got)
	}
	for _, bad := range []string{"", "6:task_A", "6:task_A1:0x", "6:task_A1:11:0", "99:x", "-1:", "6:task_A1:11:01:01:91:01:0",
		"6:task_A1:11:01:01:01:01:1", "6:task_A1:11:01:x1:01:01:0", "1:a1:11:01:01:01:01:3001:x"} {
		_, err := decodeState(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// FuzzDecodeState: decoding never panics, and what decodes encodes back
// to the same text.
func FuzzDecodeState(f *testing.F) {
	for _, st := range stateSeeds {
		f.Add(encodeState(st))
	}
	f.Add("1:x1:11:01:01:01:01:0")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := decodeState(s)
		if err != nil {
			return
		}
		if got := encodeState(st); got != s {
			// Numbers may be spelt differently ("01"); the decoded state
			// must survive a second round.
			again, err := decodeState(got)
			if err != nil || !assert.ObjectsAreEqual(st, again) {
				t.Fatalf("%q decodes to %+v, which does not round-trip", s, st)
			}
		}
	})
}
