//go:build race

package chat

// raceEnabled: the race detector is on (its goroutine stacks are larger).
const raceEnabled = true
