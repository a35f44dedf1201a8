package authz

import (
	"fmt"
	"strings"
)

// Sensitivity classifies the data a call touches or sends. Levels are ordered:
// Public < Internal < Confidential < Restricted. The zero value is Public.
//
// In CEL, sensitivities are ints and the constants PUBLIC, INTERNAL,
// CONFIDENTIAL and RESTRICTED name the levels, so policies compare them with
// the usual operators (sensitivity <= INTERNAL).
type Sensitivity int8

// The sensitivity levels, lowest first.
const (
	Public Sensitivity = iota
	Internal
	Confidential
	Restricted
)

var sensitivityNames = [...]string{"public", "internal", "confidential", "restricted"}

// Valid reports whether s is one of the four defined levels.
func (s Sensitivity) Valid() bool { return s >= Public && s <= Restricted }

// String returns the lower-case name of the level ("confidential"), or
// "sensitivity(N)" for an undefined value.
func (s Sensitivity) String() string {
	if s.Valid() {
		return sensitivityNames[s]
	}
	return fmt.Sprintf("sensitivity(%d)", int8(s))
}

// MarshalText implements [encoding.TextMarshaler]. Undefined values are an error.
func (s Sensitivity) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("authz: invalid sensitivity %d", int8(s))
	}
	return []byte(sensitivityNames[s]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]. It accepts the level
// names in any case.
func (s *Sensitivity) UnmarshalText(text []byte) error {
	v, err := ParseSensitivity(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSensitivity parses a level name ("public", "INTERNAL", ...).
func ParseSensitivity(name string) (Sensitivity, error) {
	for i, n := range sensitivityNames {
		if strings.EqualFold(name, n) {
			return Sensitivity(i), nil
		}
	}
	return Public, fmt.Errorf("authz: unknown sensitivity %q (want public, internal, confidential or restricted)", name)
}
