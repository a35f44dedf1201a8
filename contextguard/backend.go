package contextguard

import (
	"context"
	"sync"
	"unicode/utf8"
)

// Backend stores the entries of tasks. Every method is called with the ID
// of the task the entries belong to; a Backend never serves one task's
// entries for another's ID. Implementations must be safe for concurrent
// use. The default is an in-memory backend; wrap a persistent one with
// [Encrypted] so its copies die with the task.
type Backend interface {
	// Append stores e as the task's next entry.
	Append(ctx context.Context, task string, e Entry) error
	// Load returns the task's entries in order, as copies.
	Load(ctx context.Context, task string) ([]Entry, error)
	// Wipe destroys the task's entries: overwritten where the backend can,
	// then dropped.
	Wipe(ctx context.Context, task string) error
}

// memoryBackend keeps entries in process, with contents as byte slices so
// Wipe can overwrite them. A task's entries are kept in chunks so appending
// never copies the whole history.
type memoryBackend struct {
	mu    sync.Mutex
	tasks map[string][][]stored
}

// chunkSize is the number of entries per chunk.
const chunkSize = 256

type stored struct {
	e       Entry // Content empty
	content []byte
}

// NewMemoryBackend returns the in-memory backend.
func NewMemoryBackend() Backend { return &memoryBackend{tasks: map[string][][]stored{}} }

func (b *memoryBackend) Append(_ context.Context, task string, e Entry) error {
	s := stored{e: e, content: []byte(e.Content)}
	s.e.Content = ""
	b.mu.Lock()
	chunks := b.tasks[task]
	if n := len(chunks); n == 0 || len(chunks[n-1]) == chunkSize {
		chunks = append(chunks, make([]stored, 0, chunkSize))
	}
	last := len(chunks) - 1
	chunks[last] = append(chunks[last], s)
	b.tasks[task] = chunks
	b.mu.Unlock()
	return nil
}

func (b *memoryBackend) Load(_ context.Context, task string) ([]Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	chunks := b.tasks[task]
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	out := make([]Entry, 0, n)
	for _, c := range chunks {
		for _, s := range c {
			e := s.e
			e.Content = string(s.content)
			out = append(out, e)
		}
	}
	return out, nil
}

// Tail returns the newest entries within maxEntries entries and maxChars
// characters of content (<= 0: no limit), oldest first.
func (b *memoryBackend) Tail(_ context.Context, task string, maxEntries, maxChars int) ([]Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	chunks := b.tasks[task]
	var picked []*stored
	chars := 0
outer:
	for ci := len(chunks) - 1; ci >= 0; ci-- {
		for i := len(chunks[ci]) - 1; i >= 0; i-- {
			s := &chunks[ci][i]
			if maxEntries > 0 && len(picked) >= maxEntries {
				break outer
			}
			n := utf8.RuneCount(s.content)
			if maxChars > 0 && chars+n > maxChars {
				break outer
			}
			chars += n
			picked = append(picked, s)
		}
	}
	out := make([]Entry, len(picked))
	for i, s := range picked {
		e := s.e
		e.Content = string(s.content)
		out[len(picked)-1-i] = e
	}
	return out, nil
}

// tailer is implemented by backends that can return the newest entries
// without loading all of them.
type tailer interface {
	Tail(ctx context.Context, task string, maxEntries, maxChars int) ([]Entry, error)
}

func (b *memoryBackend) Wipe(_ context.Context, task string) error {
	b.mu.Lock()
	chunks := b.tasks[task]
	delete(b.tasks, task)
	b.mu.Unlock()
	for _, c := range chunks {
		for i := range c {
			clear(c[i].content)
			c[i] = stored{}
		}
	}
	return nil
}
