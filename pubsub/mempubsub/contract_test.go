package mempubsub_test

import (
	"testing"
	"time"

	"github.com/chatd/chatd/pubsub"
	"github.com/chatd/chatd/pubsub/mempubsub"
	"github.com/chatd/chatd/pubsub/pubsubtest"
)

func TestContract(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T) func() (pubsub.Broker, pubsub.Presence) {
		b := mempubsub.New()
		t.Cleanup(func() { _ = b.Close() })
		// One process: every node is the same instance.
		return func() (pubsub.Broker, pubsub.Presence) { return b, b }
	})
}

var testTime = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
