package authz

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// argKind is the kind of a declared argument type.
type argKind uint8

const (
	kindDyn argKind = iota
	kindInt
	kindUint
	kindDouble
	kindBool
	kindString
	kindBytes
	kindTimestamp
	kindDuration
	kindList
	kindMap
)

// argType is a parsed argument type expression: a CEL type name.
type argType struct {
	kind argKind
	key  *argType // map key
	elem *argType // list element, map value
	cel  *types.Type
	// convert is set when values of the type must be converted, not only
	// checked, before CEL sees them (a JSON integer read as a double, a
	// string read as a timestamp).
	convert bool
	name    string // canonical spelling: list(map(string, int))
}

// scalarArgTypes are the type names without parameters.
var scalarArgTypes = map[string]*argType{
	"dyn":       {kind: kindDyn, cel: types.DynType, name: "dyn"},
	"int":       {kind: kindInt, cel: types.IntType, name: "int"},
	"uint":      {kind: kindUint, cel: types.UintType, name: "uint", convert: true},
	"double":    {kind: kindDouble, cel: types.DoubleType, name: "double", convert: true},
	"bool":      {kind: kindBool, cel: types.BoolType, name: "bool"},
	"string":    {kind: kindString, cel: types.StringType, name: "string"},
	"bytes":     {kind: kindBytes, cel: types.BytesType, name: "bytes", convert: true},
	"timestamp": {kind: kindTimestamp, cel: types.TimestampType, name: "timestamp", convert: true},
	"duration":  {kind: kindDuration, cel: types.DurationType, name: "duration", convert: true},
}

// argTypeNames lists the type names for messages.
const argTypeNames = "int, uint, double, bool, string, bytes, timestamp, duration, dyn, list(T), map(K, V)"

// Bounds of a type expression.
const (
	maxArgTypeLen   = 1024
	maxArgTypeDepth = 16
)

func listArgType(elem *argType) *argType {
	return &argType{kind: kindList, elem: elem, cel: types.NewListType(elem.cel), convert: elem.convert,
		name: "list(" + elem.name + ")"}
}

func mapArgType(key, elem *argType) *argType {
	return &argType{kind: kindMap, key: key, elem: elem, cel: types.NewMapType(key.cel, elem.cel),
		convert: key.convert || elem.convert, name: "map(" + key.name + ", " + elem.name + ")"}
}

// parseArgType parses a type expression: a CEL type name (int, uint,
// double, bool, string, bytes, timestamp, duration, dyn), list(T) or
// map(K, V) with K one of int, uint, bool, string. A bare list is
// list(dyn), a bare map map(string, dyn). Errors say what is wrong and
// where (a byte offset), never more of the input than the expression.
func parseArgType(s string) (*argType, error) {
	if len(s) > maxArgTypeLen {
		return nil, fmt.Errorf("type is longer than %d bytes", maxArgTypeLen)
	}
	p := typeParser{s: s}
	t, err := p.typ(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(s) {
		if s[p.i] == ')' {
			return nil, fmt.Errorf("type %q: unbalanced ')' at offset %d", s, p.i)
		}
		return nil, fmt.Errorf("type %q: unexpected %q at offset %d", s, s[p.i:p.i+1], p.i)
	}
	return t, nil
}

type typeParser struct {
	s string
	i int
}

func (p *typeParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *typeParser) ident() string {
	p.space()
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '_' || p.s[p.i] == '.') {
		p.i++
	}
	return p.s[start:p.i]
}

// eat consumes c (after blanks) and reports whether it was there.
func (p *typeParser) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *typeParser) typ(depth int) (*argType, error) {
	if depth > maxArgTypeDepth {
		return nil, fmt.Errorf("type %q: nested deeper than %d", p.s, maxArgTypeDepth)
	}
	at := p.i
	name := p.ident()
	if name == "" {
		p.space()
		if p.i >= len(p.s) {
			if strings.TrimSpace(p.s) == "" {
				return nil, errors.New("type is empty")
			}
			return nil, fmt.Errorf("type %q: missing a type at the end", p.s)
		}
		return nil, fmt.Errorf("type %q: unexpected %q at offset %d (want a type name: %s)", p.s, p.s[p.i:p.i+1], p.i, argTypeNames)
	}
	if t, ok := scalarArgTypes[name]; ok {
		return t, nil
	}
	switch name {
	case "list":
		if !p.eat('(') {
			return listArgType(scalarArgTypes["dyn"]), nil
		}
		elem, err := p.typ(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.close(); err != nil {
			return nil, err
		}
		return listArgType(elem), nil
	case "map":
		if !p.eat('(') {
			return mapArgType(scalarArgTypes["string"], scalarArgTypes["dyn"]), nil
		}
		kat := p.i
		key, err := p.typ(depth + 1)
		if err != nil {
			return nil, err
		}
		switch key.kind {
		case kindInt, kindUint, kindBool, kindString:
		default:
			return nil, fmt.Errorf("type %q: map key type %s at offset %d: want int, uint, bool or string", p.s, key.name, kat)
		}
		if !p.eat(',') {
			return nil, fmt.Errorf("type %q: map needs a key and a value type, like map(string, int)", p.s)
		}
		elem, err := p.typ(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.close(); err != nil {
			return nil, err
		}
		return mapArgType(key, elem), nil
	}
	hint := ""
	switch strings.ToLower(name) {
	case "integer", "int64", "int32", "long", "number":
		hint = " (did you mean int or double?)"
	case "float", "float64", "float32":
		hint = " (did you mean double?)"
	case "boolean":
		hint = " (did you mean bool?)"
	case "str", "text":
		hint = " (did you mean string?)"
	case "array", "slice":
		hint = " (did you mean list(T)?)"
	case "object", "dict":
		hint = " (did you mean map(string, T)?)"
	case "any":
		hint = " (did you mean dyn?)"
	}
	return nil, fmt.Errorf("type %q: unknown type %q at offset %d%s (want %s)", p.s, name, at, hint, argTypeNames)
}

func (p *typeParser) close() error {
	if p.eat(')') {
		return nil
	}
	if p.i >= len(p.s) {
		return fmt.Errorf("type %q: missing ')'", p.s)
	}
	return fmt.Errorf("type %q: unexpected %q at offset %d (want ')')", p.s, p.s[p.i:p.i+1], p.i)
}

// errArgMismatch is the error of a value that does not have its declared
// type. It names no value.
type errArgMismatch struct{ want string }

func (e errArgMismatch) Error() string { return "type mismatch: not of type " + e.want }

// check reports whether v is a value of type t (an argument as JSON
// decoding or a Go caller gives it). A nil inside a list or map matches
// no type but dyn.
func (t *argType) check(v any) bool {
	switch t.kind {
	case kindDyn:
		return true
	case kindInt:
		_, ok := asInt(v)
		return ok
	case kindUint:
		_, ok := asUint(v)
		return ok
	case kindDouble:
		_, ok := asDouble(v)
		return ok
	case kindBool:
		_, ok := v.(bool)
		return ok
	case kindString:
		_, ok := v.(string)
		return ok
	case kindBytes:
		switch v.(type) {
		case []byte, string:
			return true
		}
		return false
	case kindTimestamp:
		_, ok := asTimestamp(v)
		return ok
	case kindDuration:
		_, ok := asDuration(v)
		return ok
	case kindList:
		switch l := v.(type) {
		case []any:
			for _, e := range l {
				if !t.elem.check(e) {
					return false
				}
			}
			return true
		case []string:
			return t.elem.kind == kindString || t.elem.kind == kindBytes || t.elem.kind == kindDyn || t.elem.checkAll(len(l), func(i int) any { return l[i] })
		}
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return false
		}
		if _, isBytes := v.([]byte); isBytes {
			return false
		}
		return t.elem.checkAll(rv.Len(), func(i int) any { return rv.Index(i).Interface() })
	case kindMap:
		switch m := v.(type) {
		case map[string]any:
			if t.key.kind != kindString {
				return false
			}
			for _, e := range m {
				if !t.elem.check(e) {
					return false
				}
			}
			return true
		case map[string]string:
			return t.key.kind == kindString && (t.elem.kind == kindString || t.elem.kind == kindDyn || t.elem.kind == kindBytes)
		}
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map {
			return false
		}
		for it := rv.MapRange(); it.Next(); {
			if !t.key.check(it.Key().Interface()) || !t.elem.check(it.Value().Interface()) {
				return false
			}
		}
		return true
	}
	return false
}

func (t *argType) checkAll(n int, at func(int) any) bool {
	for i := range n {
		if !t.check(at(i)) {
			return false
		}
	}
	return true
}

// value returns the CEL value of v as type t, or an error when v is not of
// type t.
func (t *argType) value(v any) (ref.Val, error) {
	if !t.convert {
		if !t.check(v) {
			return nil, errArgMismatch{t.name}
		}
		return types.DefaultTypeAdapter.NativeToValue(v), nil
	}
	switch t.kind {
	case kindUint:
		if u, ok := asUint(v); ok {
			return types.Uint(u), nil
		}
	case kindDouble:
		if f, ok := asDouble(v); ok {
			return types.Double(f), nil
		}
	case kindBytes:
		switch b := v.(type) {
		case []byte:
			return types.Bytes(b), nil
		case string:
			return types.Bytes(b), nil
		}
	case kindTimestamp:
		if ts, ok := asTimestamp(v); ok {
			return types.Timestamp{Time: ts}, nil
		}
	case kindDuration:
		if d, ok := asDuration(v); ok {
			return types.Duration{Duration: d}, nil
		}
	case kindList:
		rv := reflect.ValueOf(v)
		if _, isBytes := v.([]byte); isBytes || rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			break
		}
		out := make([]ref.Val, rv.Len())
		for i := range out {
			e, err := t.elem.value(rv.Index(i).Interface())
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return types.NewRefValList(types.DefaultTypeAdapter, out), nil
	case kindMap:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map {
			break
		}
		out := make(map[ref.Val]ref.Val, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			k, err := t.key.value(it.Key().Interface())
			if err != nil {
				return nil, err
			}
			e, err := t.elem.value(it.Value().Interface())
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, out), nil
	}
	return nil, errArgMismatch{t.name}
}

func asInt(v any) (int64, bool) {
	switch i := v.(type) {
	case int64:
		return i, true
	case int:
		return int64(i), true
	case int32:
		return int64(i), true
	case int16:
		return int64(i), true
	case int8:
		return int64(i), true
	}
	return 0, false
}

func asUint(v any) (uint64, bool) {
	switch u := v.(type) {
	case uint64:
		return u, true
	case uint:
		return uint64(u), true
	case uint32:
		return uint64(u), true
	case uint16:
		return uint64(u), true
	case uint8:
		return uint64(u), true
	}
	if i, ok := asInt(v); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

// asDouble accepts floats and integers: JSON does not tell 10 from 10.0,
// and DecodeArgs decodes whole numbers as int64.
func asDouble(v any) (float64, bool) {
	switch f := v.(type) {
	case float64:
		return f, true
	case float32:
		return float64(f), true
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	if u, ok := asUint(v); ok && u <= math.MaxInt64 {
		return float64(u), true
	}
	return 0, false
}

// asTimestamp accepts a time.Time or an RFC 3339 string (the JSON form of
// a time.Time and of a CEL timestamp).
func asTimestamp(v any) (time.Time, bool) {
	switch ts := v.(type) {
	case time.Time:
		return ts, true
	case string:
		t, err := time.Parse(time.RFC3339Nano, ts)
		return t, err == nil
	}
	return time.Time{}, false
}

// asDuration accepts a time.Duration or a string time.ParseDuration reads
// ("1.5s", "2h45m").
func asDuration(v any) (time.Duration, bool) {
	switch d := v.(type) {
	case time.Duration:
		return d, true
	case string:
		p, err := time.ParseDuration(d)
		return p, err == nil
	}
	return 0, false
}
