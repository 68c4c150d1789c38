package mongostore

import "go.mongodb.org/mongo-driver/v2/event"

// WithCommandMonitor returns o with a driver command monitor, so that a test
// can see the commands the store sends.
func WithCommandMonitor(o Options, m *event.CommandMonitor) Options {
	o.monitor = m
	return o
}

// WithBatchHook returns o with a function the writer calls before each
// batch, so that a test can hold it while messages queue.
func WithBatchHook(o Options, hook func()) Options {
	o.batchHook = hook
	return o
}
