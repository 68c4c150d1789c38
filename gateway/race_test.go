//go:build race

package gateway

// raceEnabled: the race detector is on (its goroutine stacks are larger).
const raceEnabled = true
