// Package testserver starts real backend servers for tests: a private
// redis-server per test (StartRedis) and a MongoDB-wire server for the
// MongoDB store (StartMongo: FerretDB on a fresh database of the local
// PostgreSQL). Each server runs on a free 127.0.0.1 port, keeps its files in
// the test's temporary directory and stops at the test's cleanup.
//
// A missing server binary skips the test with a message that says how to
// install it, except when the CI environment variable is set: then the test
// fails, so CI never passes by skipping.
package testserver
