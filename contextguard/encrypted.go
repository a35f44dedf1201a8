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
	"strings"
	"sync"
)

// ErrKeyDestroyed is returned when encrypted entries are read after their
// task's key was destroyed (or by a process that never had it).
var ErrKeyDestroyed = errors.New("contextguard: task key destroyed")

// encPrefix marks an encrypted content.
const encPrefix = "tgenc1:"

// encrypted wraps a Backend so it only ever sees ciphertext.
type encrypted struct {
	inner Backend

	mu   sync.Mutex
	keys map[string]*taskKey
}

type taskKey struct {
	raw  []byte
	aead cipher.AEAD
}

// Encrypted wraps inner so that every entry reaches it encrypted with
// AES-256-GCM under a key per task that exists only in this process. The
// Source and Content are encrypted; Role, Sensitivity, Trusted and Time
// stay readable and are authenticated with the task ID. Wipe destroys the
// task's key before asking inner to wipe, so the entries stay unreadable
// even in copies inner kept (crypto-shredding). The expanded key schedule
// inside crypto/aes cannot be zeroed; it is dropped with the key.
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

// aad binds the readable fields and the task to the ciphertext.
func aad(task string, e *Entry) []byte {
	b := make([]byte, 0, len(task)+len(e.Role)+32)
	b = binary.AppendUvarint(b, uint64(len(task)))
	b = append(b, task...)
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
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := k.aead.Seal(nonce, nonce, plain, aad(task, &e))
	clear(plain)
	e.Source = ""
	e.Content = encPrefix + base64.RawStdEncoding.EncodeToString(sealed)
	return b.inner.Append(ctx, task, e)
}

func (b *encrypted) Load(ctx context.Context, task string) ([]Entry, error) {
	es, err := b.inner.Load(ctx, task)
	if err != nil || len(es) == 0 {
		return es, err
	}
	k, err := b.key(task, false)
	if err != nil {
		return nil, err
	}
	for i := range es {
		if err := decrypt(k, task, &es[i]); err != nil {
			return nil, fmt.Errorf("contextguard: entry %d: %w", i, err)
		}
	}
	return es, nil
}

func decrypt(k *taskKey, task string, e *Entry) error {
	enc, ok := strings.CutPrefix(e.Content, encPrefix)
	if !ok {
		return errors.New("entry is not encrypted")
	}
	sealed, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(sealed) < k.aead.NonceSize() {
		return errors.New("malformed ciphertext")
	}
	ns := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], aad(task, e))
	if err != nil {
		return errors.New("ciphertext does not authenticate")
	}
	n, w := binary.Uvarint(plain)
	if w <= 0 || uint64(len(plain)-w) < n {
		return errors.New("malformed plaintext")
	}
	e.Source = string(plain[w : w+int(n)])
	e.Content = string(plain[w+int(n):])
	clear(plain)
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
