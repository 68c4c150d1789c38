package chat

import (
	"net/http"
	"testing"

	"github.com/chatd/chatd/push"
)

// BenchmarkSendPush measures REST sends to a recipient with no connection
// and a push subscription, with push off, with a push service that
// accepts, and with a dead one (it takes the connection and never
// answers, so every worker hangs until push.timeout and the queue fills):
// a send must cost the same in all three, because it only queues the push
// (dropping it when the queue is full).
//
//	go test -run XXX -bench SendPush -benchtime=2000x ./chat
func BenchmarkSendPush(b *testing.B) {
	for _, mode := range []string{"off", "ok", "dead"} {
		b.Run("push="+mode, func(b *testing.B) {
			var e *testEnv
			var ps *pushService
			if mode == "off" {
				e = newTestEnv(b, nil)
			} else {
				pe := newPushEnv(b, func(c *push.Config) { c.QueueSize = 64 }, nil)
				e, ps = pe.testEnv, pe.ps
				if mode == "dead" {
					ps.block = make(chan struct{})
				}
			}
			alice, bob := e.user("alice"), e.user("bob")
			if ps != nil {
				ps.subscribe(e, bob, "bob-1")
				go func() { // the accepting service's pushes need a reader
					for range ps.got {
					}
				}()
			}
			b.ResetTimer()
			for range b.N {
				if st, _ := e.restSend(alice, bob, "hi", cmid()); st != http.StatusCreated {
					b.Fatalf("send: %d", st)
				}
			}
			b.StopTimer()
			if ps != nil {
				ps.mu.Lock()
				b.ReportMetric(float64(ps.counts["bob-1"]), "push-requests")
				ps.mu.Unlock()
			}
		})
	}
}
