package push

import "github.com/prometheus/client_golang/prometheus"

// metrics are the sender's collectors; they exist without a registerer.
type metrics struct {
	sent, failed, removed, dropped, retried, muted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		sent:    c("chatd_push_sent_total", "Pushes a push service accepted."),
		failed:  c("chatd_push_failed_total", "Pushes given up: refused by the push service, retries exhausted, or the store or presence lookup failed."),
		removed: c("chatd_push_subscriptions_removed_total", "Subscriptions removed because their push service answered 404 or 410."),
		dropped: c("chatd_push_dropped_total", "Pushes dropped because the queue was full."),
		retried: c("chatd_push_retries_total", "Pushes queued again after a 429, a 5xx or no answer."),
		muted:   c("chatd_push_muted_total", "Messages not pushed because the recipient muted the conversation."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.sent, m.failed, m.removed, m.dropped, m.retried, m.muted} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
