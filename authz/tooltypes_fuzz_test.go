package authz

import (
	"testing"
)

// FuzzParseArgType parses type expressions and checks JSON values against
// them. Invariants: no panic; an accepted type's canonical form parses to
// itself; a value that passes the check converts without error, and one
// that does not is refused by the conversion too.
func FuzzParseArgType(f *testing.F) {
	for _, seed := range []struct{ typ, value string }{
		{"int", "5"},
		{"uint", "-1"},
		{"double", "5"},
		{"bool", "true"},
		{"string", `"x"`},
		{"bytes", `"YWJj"`},
		{"timestamp", `"2026-01-02T03:04:05Z"`},
		{"duration", `"1h30m"`},
		{"dyn", `[1, "a", null]`},
		{"list(string)", `["a", "b"]`},
		{"list(double)", `[1, 2.5]`},
		{"map(string, list(int))", `{"a": [1, 2]}`},
		{"map(int, string)", `{"1": "a"}`},
		{"list(map(string, timestamp))", `[{"t": "2026-01-02T03:04:05Z"}]`},
		{"list( map( string , int ) )", `[]`},
		{"map(string,int", `{}`},
		{"list(list(list(list(list(list(list(list(list(list(list(list(list(list(list(list(list(int)))))))))))))))))", `[]`},
		{"integer", `1`},
		{")", `1`},
	} {
		f.Add(seed.typ, seed.value)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		at, err := parseArgType(typ)
		if err != nil {
			if at != nil {
				t.Fatal("type returned with an error")
			}
			return
		}
		again, err := parseArgType(at.name)
		if err != nil || again.name != at.name {
			t.Fatalf("canonical form %q does not parse to itself: %v", at.name, err)
		}
		args, err := DecodeArgs([]byte(`{"v":` + value + `}`))
		if err != nil {
			return
		}
		v := args["v"]
		ok := v == nil || at.check(v)
		if v == nil {
			return
		}
		cv, err := at.value(v)
		if ok != (err == nil) {
			t.Fatalf("check says %v but conversion says %v for %s", ok, err, at.name)
		}
		if err == nil && cv == nil {
			t.Fatal("conversion returned no value")
		}
	})
}

// FuzzArgsFromJSONSchema derives declarations from arbitrary schemas.
// Invariants: no panic, and every derived declaration compiles.
func FuzzArgsFromJSONSchema(f *testing.F) {
	for _, s := range []string{
		`{"type": "object", "properties": {"n": {"type": "integer"}, "l": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}`,
		`{"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {"type": ["string", "null"]}}}}`,
		`{"properties": {"t": {"type": "string", "format": "date-time"}, "x": true, "y": {"anyOf": []}}}`,
		`{"type": "string"}`,
		`[]`,
		`{"type": "object", "properties": {"in": {}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, schema string) {
		args, err := ArgsFromJSONSchema([]byte(schema))
		if err != nil {
			return
		}
		if _, err := newToolDecl("t", "schema", args); err != nil {
			t.Fatalf("derived declaration %v does not compile: %v", args, err)
		}
	})
}
