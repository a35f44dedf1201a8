package contextguard

import (
	"context"
	"sync"
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
// Wipe can overwrite them.
type memoryBackend struct {
	mu    sync.Mutex
	tasks map[string][]stored
}

type stored struct {
	e       Entry // Content empty
	content []byte
}

// NewMemoryBackend returns the in-memory backend.
func NewMemoryBackend() Backend { return &memoryBackend{tasks: map[string][]stored{}} }

func (b *memoryBackend) Append(_ context.Context, task string, e Entry) error {
	s := stored{e: e, content: []byte(e.Content)}
	s.e.Content = ""
	b.mu.Lock()
	b.tasks[task] = append(b.tasks[task], s)
	b.mu.Unlock()
	return nil
}

func (b *memoryBackend) Load(_ context.Context, task string) ([]Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.tasks[task]
	out := make([]Entry, len(list))
	for i, s := range list {
		out[i] = s.e
		out[i].Content = string(s.content)
	}
	return out, nil
}

func (b *memoryBackend) Wipe(_ context.Context, task string) error {
	b.mu.Lock()
	list := b.tasks[task]
	delete(b.tasks, task)
	b.mu.Unlock()
	for i := range list {
		clear(list[i].content)
		list[i] = stored{}
	}
	return nil
}
