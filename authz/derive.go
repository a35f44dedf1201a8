package authz

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// ArgsOf derives the declaration of arguments of type A as policies see
// them when [Wrap] fills Call.Args (the JSON form of A): for a struct, one
// argument per field encoding/json writes, named as it names them (json
// tags, embedded structs promoted, "-" skipped); for a type whose JSON form
// is not an object, the single argument value.
//
// Field types map to CEL types as their JSON form reads: bool → bool;
// signed integers (time.Duration too) → int; unsigned → uint; floats →
// double; strings, []byte (base64), encoding.TextMarshaler and fields
// tagged ",string" → string; time.Time → timestamp; slices and arrays →
// list(T); maps → map(string, T); pointers → their element (nil is an
// absent argument); nested structs → map(string, dyn); interfaces and
// other json.Marshaler types → dyn.
//
// It is an error when A is a map or an interface (its keys are not known
// in advance), holds channels, functions or complex numbers, or has a
// field whose JSON name is not a CEL identifier (it could not be read as
// args.NAME).
func ArgsOf[A any]() (ToolArgs, error) {
	return argsOfType(reflect.TypeFor[A]())
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func argsOfType(t reflect.Type) (ToolArgs, error) {
	if t == nil {
		return nil, errors.New("authz: ArgsOf: nil type")
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fail := func(err error) (ToolArgs, error) { return nil, fmt.Errorf("authz: ArgsOf[%v]: %w", t, err) }
	if t.Kind() == reflect.Struct && !marshals(t) {
		out := ToolArgs{}
		if err := structArgs(t, out, map[reflect.Type]bool{}); err != nil {
			return fail(err)
		}
		return out, nil
	}
	if t != timeType && (t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType)) {
		return fail(errors.New("the type encodes itself as JSON (declare its arguments with Tool.Args)"))
	}
	if t.Kind() == reflect.Map || t.Kind() == reflect.Interface {
		return fail(errors.New("the arguments' names are not known in advance (declare them with Tool.Args)"))
	}
	typ, err := goArgType(t, 0)
	if err != nil {
		return fail(err)
	}
	return ToolArgs{typedArgsKey: typ}, nil
}

// marshals reports whether t encodes itself as JSON or text.
func marshals(t reflect.Type) bool {
	return t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)
}

// structArgs adds the JSON fields of struct t to out: direct fields first,
// then those of embedded structs, which they shadow.
func structArgs(t reflect.Type, out ToolArgs, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !marshals(ft) {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := out[name]; dup {
			continue
		}
		if err := validArgName(name); err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		typ, err := goArgType(f.Type, 0)
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		if hasOpt(opts, "string") {
			switch typ {
			case "int", "uint", "double", "bool", "string":
				typ = "string"
			}
		}
		out[name] = typ
	}
	for _, e := range embedded {
		if err := structArgs(e, out, seen); err != nil {
			return err
		}
	}
	return nil
}

func hasOpt(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// goArgType returns the type expression of values of t as JSON decodes
// them.
func goArgType(t reflect.Type, depth int) (string, error) {
	if depth > maxArgTypeDepth {
		return "dyn", nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return "timestamp", nil
	case t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType):
		return "dyn", nil
	case t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType):
		return "string", nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int", nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "uint", nil
	case reflect.Float32, reflect.Float64:
		return "double", nil
	case reflect.String:
		return "string", nil
	case reflect.Interface:
		return "dyn", nil
	case reflect.Struct:
		return "map(string, dyn)", nil
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 && !marshals(t.Elem()) {
			return "string", nil // base64
		}
		elem, err := goArgType(t.Elem(), depth+1)
		if err != nil {
			return "", err
		}
		return "list(" + elem + ")", nil
	case reflect.Map:
		elem, err := goArgType(t.Elem(), depth+1)
		if err != nil {
			return "", err
		}
		return "map(string, " + elem + ")", nil
	}
	return "", fmt.Errorf("%v values cannot be JSON arguments", t)
}

// ArgsFromJSONSchema derives a declaration of arguments from a tool's input
// JSON Schema (MCP's inputSchema, a model provider's function parameters):
// one argument per entry of properties, typed by its type keyword —
// integer → int, number → double, boolean → bool, string → string (with
// format date-time → timestamp), array → list(T) of its items, object →
// map(string, T) of its additionalProperties (dyn otherwise). A type list
// with null ("type": ["string", "null"]) is its other type; anything else
// (no type, several types, $ref, anyOf) is dyn.
//
// Arguments the schema does not name are denied once the declaration is
// registered, even when the schema allows additional properties. It is an
// error when the schema is not a JSON object, its type is not "object", or
// a property name is not a CEL identifier (it could not be read as
// args.NAME).
func ArgsFromJSONSchema(schema []byte) (ToolArgs, error) {
	var s map[string]any
	if err := json.Unmarshal(schema, &s); err != nil {
		return nil, fmt.Errorf("authz: ArgsFromJSONSchema: %w", err)
	}
	if s == nil {
		return nil, errors.New("authz: ArgsFromJSONSchema: the schema is not an object")
	}
	if typ, ok := s["type"]; ok && typ != "object" {
		return nil, fmt.Errorf("authz: ArgsFromJSONSchema: the schema's type is %v, not object", typ)
	}
	out := ToolArgs{}
	props, _ := s["properties"].(map[string]any)
	if len(props) > maxToolArgs {
		return nil, fmt.Errorf("authz: ArgsFromJSONSchema: more than %d properties", maxToolArgs)
	}
	for name, p := range props {
		if err := validArgName(name); err != nil {
			return nil, fmt.Errorf("authz: ArgsFromJSONSchema: property %w", err)
		}
		out[name] = schemaType(p, 0)
	}
	return out, nil
}

// schemaType is the type expression of the values schema s allows.
func schemaType(s any, depth int) string {
	m, ok := s.(map[string]any)
	if !ok || depth > maxArgTypeDepth {
		return "dyn"
	}
	var typ string
	switch t := m["type"].(type) {
	case string:
		typ = t
	case []any:
		for _, e := range t {
			if e == "null" {
				continue
			}
			s, ok := e.(string)
			if !ok || typ != "" {
				return "dyn"
			}
			typ = s
		}
	}
	switch typ {
	case "integer":
		return "int"
	case "number":
		return "double"
	case "boolean":
		return "bool"
	case "string":
		if m["format"] == "date-time" {
			return "timestamp"
		}
		return "string"
	case "array":
		return "list(" + schemaType(m["items"], depth+1) + ")"
	case "object":
		if _, ok := m["additionalProperties"].(map[string]any); ok {
			return "map(string, " + schemaType(m["additionalProperties"], depth+1) + ")"
		}
		return "map(string, dyn)"
	}
	return "dyn"
}
