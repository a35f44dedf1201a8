package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskguard/taskguard/authz"
)

// TestZeroBroker calls every exported method of a zero Broker: none
// panics, Lease and Close return an error, Redact returns its input.
func TestZeroBroker(t *testing.T) {
	t.Parallel()
	run := func(name string, f func(t *testing.T, b *Broker)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var b Broker
			assert.NotPanics(t, func() { f(t, &b) })
		})
	}
	run("Lease", func(t *testing.T, b *Broker) {
		g, err := authz.New()
		require.NoError(t, err)
		ctx, task, err := g.Begin(context.Background(), authz.TaskSpec{Agent: authz.Agent{ID: "a"}})
		require.NoError(t, err)
		defer task.End()
		for _, c := range []context.Context{context.Background(), ctx} {
			l, err := b.Lease(c, "db")
			assert.Error(t, err)
			assert.Nil(t, l)
		}
	})
	run("Live", func(t *testing.T, b *Broker) { assert.Zero(t, b.Live()) })
	run("Redact", func(t *testing.T, b *Broker) { assert.Equal(t, "text", b.Redact("text")) })
	run("Flush", func(t *testing.T, b *Broker) { assert.NoError(t, b.Flush()) })
	run("Close", func(t *testing.T, b *Broker) {
		assert.NoError(t, b.Close())
		assert.ErrorIs(t, b.Close(), ErrClosed)
	})
	run("print", func(t *testing.T, b *Broker) {
		_ = b.String()
		_ = b.GoString()
		_ = fmt.Sprintf("%v %+v %#v", b, b, b)
		_, err := json.Marshal(b)
		assert.NoError(t, err)
		_ = b.LogValue()
		slog.New(slog.DiscardHandler).Info("x", "broker", b)
	})
}
