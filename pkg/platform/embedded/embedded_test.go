package embedded

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// startFerretDB returns a collection and a stop func that disconnects the
// client first: FerretDB's Close gives open connections 3 s to go away.
func startFerretDB(t *testing.T, dir string) (*mongo.Collection, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	f, err := StartFerretDB(ctx, dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FerretDB started in %s at %s", time.Since(began), f.URI())
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	return client.Database("mlpanel").Collection("projects"), func() {
		_ = client.Disconnect(context.Background())
		f.Close()
	}
}

// TestFerretDB exercises the driver calls the services rely on, then checks
// the data survives a restart on the same directory.
func TestFerretDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	coll, stop := startFerretDB(t, dir)
	defer func() { stop() }()

	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "name", Value: 1}},
		Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatalf("create unique index: %v", err)
	}
	for _, name := range []string{"iris", "mnist"} {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "name", Value: name}, {Key: "state", Value: "stopped"}}); err != nil {
			t.Fatalf("insert %s: %v", name, err)
		}
	}
	_, err := coll.InsertOne(ctx, bson.D{{Key: "name", Value: "iris"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("duplicate insert: want a duplicate key error, got %v", err)
	}

	// The per-collection ID counter: $inc with upsert, returning the new value.
	counters := coll.Database().Collection("counters")
	next := func() int32 {
		var doc struct{ Seq int32 }
		err := counters.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "projects"}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: 1}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
		).Decode(&doc)
		if err != nil {
			t.Fatalf("counter: %v", err)
		}
		return doc.Seq
	}
	if a, b := next(), next(); a != 1 || b != 2 {
		t.Fatalf("counter: got %d, %d; want 1, 2", a, b)
	}

	res, err := coll.UpdateOne(ctx, bson.D{{Key: "name", Value: "iris"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}})
	if err != nil || res.MatchedCount != 1 || res.ModifiedCount != 1 {
		t.Fatalf("update: %+v, %v", res, err)
	}
	del, err := coll.DeleteOne(ctx, bson.D{{Key: "name", Value: "mnist"}})
	if err != nil || del.DeletedCount != 1 {
		t.Fatalf("delete: %+v, %v", del, err)
	}

	// Restart on the same dir: documents, index and counter persist.
	stop()
	coll, stop = startFerretDB(t, dir)
	counters = coll.Database().Collection("counters")

	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	var docs []struct{ Name, State string }
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatalf("find: %v", err)
	}
	if len(docs) != 1 || docs[0].Name != "iris" || docs[0].State != "running" {
		t.Fatalf("after restart: got %+v, want only iris running", docs)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "name", Value: "iris"}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("unique index after restart: want a duplicate key error, got %v", err)
	}
	if n := next(); n != 3 {
		t.Fatalf("counter after restart: got %d, want 3", n)
	}
}

func startNATS(t *testing.T, dir string) (jetstream.JetStream, func()) {
	t.Helper()
	began := time.Now()
	n, err := StartNATS(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NATS started in %s at %s", time.Since(began), n.ClientURL())
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		n.Shutdown()
		t.Fatal(err)
	}
	stop := func() {
		nc.Close()
		n.Shutdown()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	return js, stop
}

// TestNATS checks JetStream publish deduplication by Nats-Msg-Id, a durable
// consumer, and that both survive a restart on the same directory.
func TestNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	js, stop := startNATS(t, dir)
	defer func() { stop() }()

	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       "MLPANEL_EVENTS",
		Subjects:   []string{"mlpanel.events.>"},
		Storage:    jetstream.FileStorage,
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	publish := func(js jetstream.JetStream, id string) *jetstream.PubAck {
		t.Helper()
		msg := nats.NewMsg("mlpanel.events.project.1.created")
		msg.Header.Set(jetstream.MsgIDHeader, id)
		msg.Data = []byte(`{"id":"` + id + `"}`)
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		return ack
	}
	if publish(js, "ev-1").Duplicate || !publish(js, "ev-1").Duplicate {
		t.Fatal("second publish with the same Nats-Msg-Id was not reported as duplicate")
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream after dedup: %+v, %v; want 1 message", info, err)
	}

	consumer := jetstream.ConsumerConfig{Durable: "subscriber", AckPolicy: jetstream.AckExplicitPolicy}
	fetchOne := func(js jetstream.JetStream) string {
		t.Helper()
		c, err := js.CreateOrUpdateConsumer(ctx, "MLPANEL_EVENTS", consumer)
		if err != nil {
			t.Fatalf("consumer: %v", err)
		}
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
		return msg.Headers().Get(jetstream.MsgIDHeader)
	}
	if id := fetchOne(js); id != "ev-1" {
		t.Fatalf("consumer got %q, want ev-1", id)
	}
	publish(js, "ev-2")

	// Restart on the same dir: messages, the consumer's acked position and the
	// dedup window persist.
	stop()
	js, stop = startNATS(t, dir)
	if !publish(js, "ev-2").Duplicate {
		t.Error("publish of ev-2 after restart was not deduplicated")
	}
	if id := fetchOne(js); id != "ev-2" {
		t.Fatalf("consumer after restart got %q, want ev-2 (ev-1 was acked)", id)
	}
}

// A taken port must fail fast with the cause, not hang for the timeout or
// exit the process (nats-server's default logger exits on Fatalf).
func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()

	log := WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil)))
	began := time.Now()
	if n, err := StartNATS(t.TempDir(), addr, log); err == nil {
		n.Shutdown()
		t.Error("NATS started on a taken port")
	} else if !strings.Contains(err.Error(), "address already in use") || time.Since(began) > 5*time.Second {
		t.Errorf("NATS on a taken port: %v after %s", err, time.Since(began))
	}

	f, err := StartFerretDB(context.Background(), t.TempDir(), addr, log)
	if err == nil {
		f.Close()
		t.Fatal("FerretDB started on a taken port")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("FerretDB on a taken port: %v", err)
	}
}
