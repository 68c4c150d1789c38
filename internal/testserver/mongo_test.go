package testserver

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestStartMongo(t *testing.T) {
	m := StartMongo(t)
	if !strings.HasPrefix(m.URI(), "mongodb://") {
		t.Fatalf("URI() = %q, want a mongodb:// URI", m.URI())
	}
	db1, db2 := m.Database(), m.Database()
	if db1 == db2 || db1 == "" {
		t.Fatalf("Database() returned %q then %q, want two distinct names", db1, db2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()

	coll := client.Database(db1).Collection("things")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 1}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var got struct {
		N int `bson:"n"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
		t.Fatalf("find: %v", err)
	}
	if got.N != 1 {
		t.Fatalf("n = %d, want 1", got.N)
	}
	// The other database is untouched.
	n, err := client.Database(db2).Collection("things").CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 0 {
		t.Fatalf("fresh database holds %d documents, want 0", n)
	}
}

// Two servers never share state, even under one database name: each
// keeps its data in a PostgreSQL database (or directory) of its own.
func TestStartMongoSeparateServers(t *testing.T) {
	a, b := StartMongo(t), StartMongo(t)
	if a.Backend() == "external" {
		t.Skip("one external server for every test")
	}
	if os.Getenv("CI") != "" && a.Backend() != "postgresql" {
		t.Fatalf("Backend() = %q with CI set, want postgresql", a.Backend())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(m *Mongo) *mongo.Client {
		c, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		return c
	}
	ca, cb := connect(a), connect(b)
	if _, err := ca.Database("same").Collection("things").InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	n, err := cb.Database("same").Collection("things").CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 0 {
		t.Fatalf("the second server sees %d documents of the first, want 0", n)
	}
}
