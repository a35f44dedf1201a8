package secrets

import (
	"encoding/binary"
	"math/rand/v2"
)

// sealed holds secret bytes XOR-masked with a random pad of the same
// length, so that the secret is nowhere in memory as plain data while it
// is stored. Value-holding types keep a *sealed, never the bytes: fmt
// prints a pointer met below the top level of a value as an address, so
// printing a struct that holds a Credential or a Lease in an unexported
// field, a slice or a map (where fmt cannot call their redacting methods)
// shows no secret, and printers that do follow pointers find only the
// masked bytes and the pad. The mask guards against accidental display,
// not against an attacker reading the process's memory.
//
// A sealed is immutable until wipe; the owner serialises wipe with open.
// Its methods accept a nil receiver, which holds nothing.
type sealed struct {
	masked, pad []byte
}

// seal returns a sealed copy of v; v is not modified.
func seal(v []byte) *sealed {
	s := &sealed{masked: make([]byte, len(v)), pad: make([]byte, len(v))}
	var w [8]byte
	for i := 0; i < len(v); i += 8 {
		binary.LittleEndian.PutUint64(w[:], rand.Uint64())
		copy(s.pad[i:], w[:])
	}
	for i, c := range v {
		s.masked[i] = c ^ s.pad[i]
	}
	return s
}

// open returns a new plain copy of the secret, which the caller should
// clear when done; nil for a nil or wiped sealed.
func (s *sealed) open() []byte {
	if s == nil || s.masked == nil {
		return nil
	}
	v := make([]byte, len(s.masked))
	for i, c := range s.masked {
		v[i] = c ^ s.pad[i]
	}
	return v
}

// size returns the length of the secret.
func (s *sealed) size() int {
	if s == nil {
		return 0
	}
	return len(s.masked)
}

// wipe zeroes and drops the secret.
func (s *sealed) wipe() {
	if s == nil {
		return
	}
	clear(s.masked)
	clear(s.pad)
	s.masked, s.pad = nil, nil
}
