package testserver

import (
	"errors"
	"os"
)

// ErrExternalMongo is returned by Signal when the server is the one named by
// CHATD_TEST_MONGO_URI, which the test did not start.
var ErrExternalMongo = errors.New("testserver: the MongoDB server is external (" + MongoURIEnv + "); it cannot be signalled")

// Signal sends sig to the MongoDB-wire server process started for the test,
// e.g. SIGSTOP and SIGCONT to freeze the store and let it go again (chaos
// tests). The caller must let a stopped server continue before the test ends.
func (m *Mongo) Signal(sig os.Signal) error {
	if m.proc == nil {
		return ErrExternalMongo
	}
	return m.proc.Signal(sig)
}
