//go:build !race

package authz

import (
	"context"
	"testing"
)

// Without an observer, Check makes no event and allocates nothing for one
// (the race detector allocates, hence the build tag).
func TestCheckWithoutObserverDoesNotAllocate(t *testing.T) {
	g, ctx := observedBenchGuard(t)
	if n := testing.AllocsPerRun(200, func() { g.Check(ctx, benchCall) }); n != 0 {
		t.Fatalf("Check allocates %v times per call without an observer", n)
	}
}

// With an observer that keeps nothing, an event costs no allocation either.
func TestCheckWithObserverDoesNotAllocate(t *testing.T) {
	g, ctx := observedBenchGuard(t, WithObserver(ObserverFuncs{Decision: func(context.Context, DecisionEvent) {}}))
	if n := testing.AllocsPerRun(200, func() { g.Check(ctx, benchCall) }); n != 0 {
		t.Fatalf("Check allocates %v times per call with a no-op observer", n)
	}
}
