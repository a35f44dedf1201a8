package secrets

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/taskguard/taskguard/authz"
	"github.com/taskguard/taskguard/internal/glob"
	"github.com/taskguard/taskguard/internal/redact"
)

// Bounds of the inspection of one call's arguments. Arguments beyond them
// cannot be inspected, and a call of a task holding an audience-bound lease
// whose arguments exceed them is denied.
const (
	// MaxInspectDepth bounds the nesting of maps, lists, structs and
	// pointers in a call's arguments.
	MaxInspectDepth = 64
	// MaxInspectValues bounds the number of values (map keys and entries,
	// list elements, struct fields) in a call's arguments.
	MaxInspectValues = 1 << 20
)

// errInspectLimit denies a call whose arguments exceed the bounds.
var errInspectLimit = fmt.Errorf("secret exfiltration check: arguments nested deeper than %d levels or holding more than %d values cannot be inspected",
	MaxInspectDepth, MaxInspectValues)

// inspector returns the check the broker registers, once, on a task that
// leases a value with an [Audience]. While any such lease of the task is
// live, it looks for the value of each, in any of its encoded forms, in the
// call's destination (as given and canonical) and arguments, and denies
// the call when it finds one and the destination is not in that lease's
// audience. The guard runs it for the calls of the task and its
// sub-tasks.
func (b *Broker) inspector(t *authz.Task, tb *taskBinding) authz.InspectFunc {
	return func(ci *authz.CallInfo) (err error) {
		if tb.n.Load() == 0 {
			return nil
		}
		defer func() {
			if r := recover(); r != nil {
				err = errors.New("secret exfiltration check: inspecting the call failed")
			}
		}()
		snap := b.snapshot()
		if snap.err != nil {
			return fmt.Errorf("secret exfiltration check: %w", snap.err)
		}
		in := inspection{snap: snap, task: t, ci: ci}
		in.text(ci.Call.Destination)
		in.text(ci.Destination)
		in.walk(ci.Call.Args, 0)
		return in.err
	}
}

// inspection is the state of one inspector run.
type inspection struct {
	snap   *snapshot
	task   *authz.Task
	ci     *authz.CallInfo
	values int
	// allowed[:nAllowed] and more list the leases already found and
	// allowed to go to the call's destination (an array, not a slice of
	// itself, so that the inspection stays on the stack).
	allowed  [4]*Lease
	nAllowed int
	more     []*Lease
	// visited holds the pointers and maps already walked by reflection.
	visited map[visit]struct{}
	err     error
}

type visit struct {
	p uintptr
	t reflect.Type
}

// text looks for the values in s, and in s percent-decoded (twice, for
// double encoding) when it has escapes: mixed-case or partial escaping is
// decoded rather than enumerated.
func (in *inspection) text(s string) {
	min := in.snap.m.MinMatchLen()
	for range 3 {
		if in.err != nil || min == 0 || len(s) < min {
			return
		}
		in.snap.m.Find(s, in.found)
		if strings.IndexByte(s, '%') < 0 {
			return
		}
		d := redact.Unescape(s)
		if d == s {
			return
		}
		s = d
	}
}

// bytes is text for a byte slice, without copying it.
func (in *inspection) bytes(p []byte) {
	if len(p) > 0 {
		in.text(unsafe.String(unsafe.SliceData(p), len(p)))
	}
}

// found handles an occurrence of pattern i; it returns false once the call
// is denied.
func (in *inspection) found(i int) bool {
	l := in.snap.owners[i]
	if l == nil || l.task != in.task || len(l.audience) == 0 {
		return true
	}
	if slices.Contains(in.allowed[:in.nAllowed], l) || slices.Contains(in.more, l) {
		return true
	}
	if !l.live() {
		return true
	}
	if in.mayReceive(l) {
		if in.nAllowed < len(in.allowed) {
			in.allowed[in.nAllowed] = l
			in.nAllowed++
		} else {
			in.more = append(in.more, l)
		}
		return true
	}
	in.err = fmt.Errorf("secret exfiltration: the value of lease %s (%s) may only be sent to %s, not to %s",
		l.id, l.name, strings.Join(l.audience, ", "), in.where())
	return false
}

// mayReceive reports whether the call's destination is in l's audience:
// only a destination with a network host (a URL or an email address) can
// be; an opaque name such as s3://bucket never is, whatever it looks like.
func (in *inspection) mayReceive(l *Lease) bool {
	if in.ci.Kind != "url" && in.ci.Kind != "email" || in.ci.Host == "" {
		return false
	}
	for _, a := range l.audience {
		if ok, _ := glob.Host(a, in.ci.Host); ok {
			return true
		}
	}
	return false
}

// where names the call's destination for a denial, never showing a value.
func (in *inspection) where() string {
	switch in.ci.Kind {
	case "url", "email":
		return fmt.Sprintf("host %q", in.snap.m.Replace(in.ci.Host, Redacted))
	case "none", "":
		return "a call without a destination"
	case "file":
		return "a file"
	default:
		return fmt.Sprintf("a destination of kind %q, which has no network host", in.ci.Kind)
	}
}

// enter counts one value at the given depth and reports whether the
// inspection may go on.
func (in *inspection) enter(depth int) bool {
	if in.err != nil {
		return false
	}
	in.values++
	if depth > MaxInspectDepth || in.values > MaxInspectValues {
		in.err = errInspectLimit
		return false
	}
	return true
}

// walk looks for the values in every string and byte slice of x, map keys
// included. JSON-shaped values and the common standard library containers
// are walked directly, anything else by reflection over exported fields.
// No method of x is called.
func (in *inspection) walk(x any, depth int) {
	if !in.enter(depth) {
		return
	}
	switch v := x.(type) {
	case nil, bool, float64, int, int64:
	case string:
		in.text(v)
	case json.Number:
		in.text(string(v))
	case []byte:
		in.bytes(v)
	case json.RawMessage:
		in.bytes(v)
	case map[string]any:
		for k, e := range v {
			in.text(k)
			in.walk(e, depth+1)
		}
	case []any:
		for _, e := range v {
			in.walk(e, depth+1)
		}
	case []string:
		in.strings(v, depth)
	case map[string]string:
		for k, e := range v {
			if !in.enter(depth + 1) {
				return
			}
			in.text(k)
			in.text(e)
		}
	case map[string][]string:
		in.multimap(v, depth)
	case http.Header:
		in.multimap(v, depth)
	case url.Values:
		in.multimap(v, depth)
	default:
		in.reflect(reflect.ValueOf(x), depth)
	}
}

func (in *inspection) strings(list []string, depth int) {
	for _, s := range list {
		if !in.enter(depth + 1) {
			return
		}
		in.text(s)
	}
}

func (in *inspection) multimap(m map[string][]string, depth int) {
	for k, list := range m {
		if !in.enter(depth + 1) {
			return
		}
		in.text(k)
		in.strings(list, depth+1)
	}
}

var userinfoType = reflect.TypeFor[url.Userinfo]()

// reflect walks v: strings and byte slices or arrays are searched; maps,
// slices, arrays, pointers, interfaces and the exported fields of structs
// are followed (each pointer and map once); url.Userinfo, whose fields are
// unexported, is read through its methods. Everything else holds no text.
func (in *inspection) reflect(v reflect.Value, depth int) {
	if !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.String:
		in.text(v.String())
	case reflect.Interface:
		if !v.IsNil() && in.enter(depth+1) {
			in.reflect(v.Elem(), depth+1)
		}
	case reflect.Pointer:
		if v.IsNil() || !in.first(v) || !in.enter(depth+1) {
			return
		}
		if v.Type().Elem() == userinfoType {
			u := v.Interface().(*url.Userinfo)
			in.text(u.Username())
			p, _ := u.Password()
			in.text(p)
			return
		}
		in.reflect(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == userinfoType {
			u := v.Interface().(url.Userinfo)
			in.reflect(reflect.ValueOf(&u), depth)
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() && in.enter(depth+1) {
				in.reflect(v.Field(i), depth+1)
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Kind() == reflect.Slice || v.CanAddr() {
				in.bytes(v.Bytes())
				return
			}
			p := make([]byte, v.Len())
			for i := range p {
				p[i] = byte(v.Index(i).Uint())
			}
			in.bytes(p)
			clear(p)
			return
		}
		for i := range v.Len() {
			if !in.enter(depth + 1) {
				return
			}
			in.reflect(v.Index(i), depth+1)
		}
	case reflect.Map:
		if v.IsNil() || !in.first(v) {
			return
		}
		for it := v.MapRange(); it.Next(); {
			if !in.enter(depth + 1) {
				return
			}
			in.reflect(it.Key(), depth+1)
			in.reflect(it.Value(), depth+1)
		}
	}
}

// first reports whether the pointer or map v is met for the first time
// (with its type: a struct and its first field share an address).
func (in *inspection) first(v reflect.Value) bool {
	k := visit{v.Pointer(), v.Type()}
	if in.visited == nil {
		in.visited = map[visit]struct{}{}
	}
	if _, seen := in.visited[k]; seen {
		return false
	}
	in.visited[k] = struct{}{}
	return true
}
