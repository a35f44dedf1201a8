//go:build race

package redisstore

// raceEnabled is true when the race detector is on: load tests scale
// down to finish in time under its slowdown.
const raceEnabled = true
