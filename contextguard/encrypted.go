package contextguard

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// ErrKeyDestroyed is returned when encrypted entries are read after their
// task's key was destroyed (or by a process that never had it).
var ErrKeyDestroyed = errors.New("contextguard: task key destroyed")

// ErrTampered is returned (wrapped) when the entries an [Encrypted]
// backend reads back are not exactly the task's history as it was
// written: an entry was altered, dropped (including the newest ones),
// reordered, repeated, or taken from another task or another backend.
// Reads never return a shorter, reordered or spliced history instead.
var ErrTampered = errors.New("contextguard: stored entries were tampered with")

// encPrefix marks an encrypted content: encPrefix, the entry's sequence
// number in decimal, ':', then the base64 of nonce and ciphertext.
const encPrefix = "tgenc2:"

// aadDomain separates the authenticated data of entries from any other use
// of the key.
const aadDomain = "taskguard/contextguard/entry/v2"

// encrypted wraps a Backend so it only ever sees ciphertext.
type encrypted struct {
	inner Backend

	mu   sync.Mutex
	keys map[string]*taskKey // requires mu
}

// taskKey is one task's key and the sequence of its entries.
type taskKey struct {
	raw  []byte
	aead cipher.AEAD

	// mu is held exclusively by Append across the inner Append, so entries
	// reach the inner backend in sequence order, and shared by Load.
	mu sync.RWMutex
	// next is the sequence number of the next entry: the number of
	// entries appended so far. Requires mu.
	next uint64
	// unsure holds the sequence numbers whose inner Append failed: the
	// entry may or may not have been stored. Requires mu.
	unsure map[uint64]struct{}
}

// Encrypted wraps inner so that every entry reaches it encrypted with
// AES-256-GCM under a key per task that exists only in this process. The
// Source and Content are encrypted; Role, Sensitivity, Trusted and Time
// stay readable and are authenticated together with the task ID and the
// entry's position in the task's history. Load checks that it reads back
// exactly the history this process wrote, in order and complete up to the
// newest entry, and otherwise fails with an error wrapping [ErrTampered].
// An entry whose inner Append failed may be missing without error.
//
// Appends of one task are serialised (each holds the task's lock across
// inner's Append), so inner stores them in order; different tasks proceed
// in parallel. Wipe destroys the task's key before asking inner to wipe, so
// the entries stay unreadable even in copies inner kept
// (crypto-shredding). The expanded key schedule inside crypto/aes cannot
// be zeroed; it is dropped with the key. The returned Backend is safe for
// concurrent use when inner is.
func Encrypted(inner Backend) Backend {
	return &encrypted{inner: inner, keys: map[string]*taskKey{}}
}

func (b *encrypted) key(task string, create bool) (*taskKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.keys[task]; ok {
		return k, nil
	}
	if !create {
		return nil, ErrKeyDestroyed
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	k := &taskKey{raw: raw, aead: aead}
	b.keys[task] = k
	return k, nil
}

// aad binds the readable fields, the task and the entry's position to the
// ciphertext.
func aad(task string, seq uint64, e *Entry) []byte {
	b := make([]byte, 0, len(aadDomain)+len(task)+len(e.Role)+48)
	b = append(b, aadDomain...)
	b = binary.AppendUvarint(b, uint64(len(task)))
	b = append(b, task...)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(e.Role)))
	b = append(b, e.Role...)
	b = append(b, byte(e.Sensitivity))
	if e.Trusted {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return binary.AppendVarint(b, e.Time.UnixNano())
}

func (b *encrypted) Append(ctx context.Context, task string, e Entry) error {
	k, err := b.key(task, true)
	if err != nil {
		return fmt.Errorf("contextguard: task key: %w", err)
	}
	plain := make([]byte, 0, len(e.Source)+len(e.Content)+binary.MaxVarintLen64)
	plain = binary.AppendUvarint(plain, uint64(len(e.Source)))
	plain = append(plain, e.Source...)
	plain = append(plain, e.Content...)
	defer clear(plain)
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	e.Source = ""

	k.mu.Lock()
	defer k.mu.Unlock()
	seq := k.next
	sealed := k.aead.Seal(nonce, nonce, plain, aad(task, seq, &e))
	e.Content = encPrefix + strconv.FormatUint(seq, 10) + ":" + base64.RawStdEncoding.EncodeToString(sealed)
	k.next++
	if err := b.inner.Append(ctx, task, e); err != nil {
		if k.unsure == nil {
			k.unsure = map[uint64]struct{}{}
		}
		k.unsure[seq] = struct{}{}
		return err
	}
	return nil
}

func (b *encrypted) Load(ctx context.Context, task string) ([]Entry, error) {
	k, err := b.key(task, false)
	if err != nil {
		// Without a key there is no history to check; an empty one is
		// still empty.
		es, lerr := b.inner.Load(ctx, task)
		if lerr != nil || len(es) > 0 {
			return nil, errors.Join(err, lerr)
		}
		return es, nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	es, err := b.inner.Load(ctx, task)
	if err != nil {
		return nil, err
	}
	want := uint64(0)
	for i := range es {
		// An entry whose Append failed may be missing: skip its number
		// when the stored entry is not it.
		got, _ := storedSeq(es[i].Content)
		for got != want && k.isUnsure(want) {
			want++
		}
		if err := k.open(task, want, &es[i]); err != nil {
			for j := range es[:i] {
				es[j] = Entry{}
			}
			return nil, fmt.Errorf("%w: entry %d: %s", ErrTampered, i, err.Error())
		}
		want++
	}
	for want < k.next && k.isUnsure(want) {
		want++
	}
	if want != k.next {
		for j := range es {
			es[j] = Entry{}
		}
		return nil, fmt.Errorf("%w: %d entries stored, %d expected", ErrTampered, len(es), k.next-uint64(len(k.unsure)))
	}
	return es, nil
}

// isUnsure reports whether the Append of entry seq failed. Requires k.mu
// held.
func (k *taskKey) isUnsure(seq uint64) bool {
	_, ok := k.unsure[seq]
	return ok
}

// storedSeq returns the sequence number a stored content claims; ok is
// false when it claims none. open checks the claim.
func storedSeq(content string) (seq uint64, ok bool) {
	rest, ok := strings.CutPrefix(content, encPrefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, err == nil
}

// open decrypts e in place, checking that it is the entry at position seq
// of task. On error e is unchanged.
func (k *taskKey) open(task string, seq uint64, e *Entry) error {
	rest, ok := strings.CutPrefix(e.Content, encPrefix)
	if !ok {
		return errors.New("entry is not encrypted")
	}
	num, enc, ok := strings.Cut(rest, ":")
	if !ok {
		return errors.New("malformed entry")
	}
	got, err := strconv.ParseUint(num, 10, 64)
	if err != nil || strconv.FormatUint(got, 10) != num {
		return errors.New("malformed sequence number")
	}
	if got != seq {
		return fmt.Errorf("entry is number %d of its history, expected %d", got, seq)
	}
	sealed, err := base64.RawStdEncoding.Strict().DecodeString(enc)
	if err != nil || len(sealed) < k.aead.NonceSize()+k.aead.Overhead() {
		return errors.New("malformed ciphertext")
	}
	ns := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], aad(task, seq, e))
	if err != nil {
		return errors.New("ciphertext does not authenticate")
	}
	defer clear(plain)
	n, w := binary.Uvarint(plain)
	if w <= 0 || uint64(len(plain)-w) < n {
		return errors.New("malformed plaintext")
	}
	e.Source = string(plain[w : w+int(n)])
	e.Content = string(plain[w+int(n):])
	return nil
}

func (b *encrypted) Wipe(ctx context.Context, task string) error {
	b.mu.Lock()
	k := b.keys[task]
	delete(b.keys, task)
	b.mu.Unlock()
	if k != nil {
		clear(k.raw)
	}
	return b.inner.Wipe(ctx, task)
}
