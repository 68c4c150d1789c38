package mongostore_test

import (
	"context"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/internal/testserver"
	"github.com/chatd/chatd/store"
	"github.com/chatd/chatd/store/mongostore"
	"github.com/chatd/chatd/store/storetest"
)

// openStore opens a Store on a fresh database of m, closed (and, on a
// server of the developer's, dropped) when t ends.
func openStore(t testing.TB, m *testserver.Mongo) *mongostore.Store {
	t.Helper()
	return openStoreWith(t, m, mongostore.Options{})
}

func openStoreWith(t testing.TB, m *testserver.Mongo, o mongostore.Options) *mongostore.Store {
	t.Helper()
	db := m.Database()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := mongostore.Open(ctx, m.URI(), db, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		if os.Getenv(testserver.MongoURIEnv) != "" {
			dropDatabase(t, m.URI(), db)
		}
	})
	return s
}

func dropDatabase(t testing.TB, uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop %s: %v", db, err)
		return
	}
	defer func() { _ = client.Disconnect(ctx) }()
	if err := client.Database(db).Drop(ctx); err != nil {
		t.Logf("drop %s: %v", db, err)
	}
}

func TestContract(t *testing.T) {
	m := testserver.StartMongo(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, m)
	})
}

// TestContractFoldEveryEvent runs the contract suite with every read that
// applies an event caching the folded state (states.go), so that the
// cached path gives what the event log does in every case of the suite.
func TestContractFoldEveryEvent(t *testing.T) {
	m := testserver.StartMongo(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStoreWith(t, m, mongostore.WithFoldAfter(mongostore.Options{}, 1))
	})
}
