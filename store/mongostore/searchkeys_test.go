package mongostore_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatd/chatd/internal/testserver"
)

// A user document from before the search keys is found by the start of
// any word once a store opens the database.
func TestOpenBackfillsSearchKeys(t *testing.T) {
	m := testserver.StartMongo(t)
	db := m.Database()
	openOn(t, m, db) // the indexes
	ctx := testCtx(t)
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	if _, err := client.Database(db).Collection("users").InsertOne(ctx, bson.D{
		{Key: "_id", Value: "old"}, {Key: "username", Value: "bob"}, {Key: "display_name", Value: "Bob Builder"},
		{Key: "display_fold", Value: "bob builder"}, {Key: "password_hash", Value: "h"}, {Key: "created_at", Value: bson.DateTime(1)},
	}); err != nil {
		t.Fatal(err)
	}
	s := openOn(t, m, db)
	got, err := s.SearchUsers(ctx, "builder", "", 10)
	if err != nil || len(got) != 1 || got[0].ID != "old" {
		t.Fatalf("SearchUsers(builder) after Open = %+v, %v", got, err)
	}
}
