package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Webhook is one subscription. Its secret is stored sealed and shown
// only in the answer that created it.
type Webhook struct {
	ID          string    `bson:"_id" json:"id"`
	URL         string    `bson:"url" json:"url"`
	Types       []string  `bson:"types" json:"types"`
	Projects    []string  `bson:"projects" json:"projects"` // project ids; empty: every project (admins only)
	Description string    `bson:"description" json:"description"`
	CreatedBy   string    `bson:"createdBy" json:"created_by"`
	CreatedByID string    `bson:"createdById" json:"-"`
	CreatedAt   time.Time `bson:"createdAt" json:"created_at"`
	Sealed      string    `bson:"secret" json:"-"`
	// Secret is filled only in the create answer.
	Secret string `bson:"-" json:"secret,omitempty"`
}

// Delivery is one attempt to deliver one event.
type Delivery struct {
	ID         string    `bson:"_id" json:"id"`
	WebhookID  string    `bson:"webhookId" json:"webhook_id"`
	EventID    string    `bson:"eventId" json:"event_id"`
	EventType  string    `bson:"eventType" json:"event_type"`
	Attempt    int       `bson:"attempt" json:"attempt"`
	StatusCode int       `bson:"statusCode" json:"status_code"` // 0: no answer (Error says why)
	Error      string    `bson:"error,omitempty" json:"error,omitempty"`
	Outcome    string    `bson:"outcome" json:"outcome"` // delivered, retrying, gave_up
	DurationMS int64     `bson:"durationMs" json:"duration_ms"`
	At         time.Time `bson:"at" json:"at"`
	Seq        int64     `bson:"seq" json:"-"` // orders attempts of the same millisecond
}

// ErrNotFound is a webhook the store does not hold.
var ErrNotFound = errors.New("webhook not found")

// Store keeps webhooks and their delivery log in the gateway's database.
type Store struct {
	hooks, deliveries *mongo.Collection
}

// NewStore opens the collections and their index.
func NewStore(ctx context.Context, db *mongo.Database) (*Store, error) {
	s := &Store{hooks: db.Collection("webhooks"), deliveries: db.Collection("webhook_deliveries")}
	_, err := s.deliveries.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "webhookId", Value: 1}, {Key: "at", Value: -1}}})
	if err != nil {
		return nil, fmt.Errorf("indexing webhook deliveries: %w", err)
	}
	return s, nil
}

func (s *Store) Create(ctx context.Context, h Webhook) error {
	if _, err := s.hooks.InsertOne(ctx, h); err != nil {
		return fmt.Errorf("storing webhook: %w", err)
	}
	return nil
}

func (s *Store) Get(ctx context.Context, id string) (Webhook, error) {
	var h Webhook
	err := s.hooks.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, fmt.Errorf("reading webhook %s: %w", id, err)
	}
	return h, nil
}

// All returns every webhook, oldest first.
func (s *Store) All(ctx context.Context) ([]Webhook, error) {
	cur, err := s.hooks.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	out := []Webhook{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	return out, nil
}

// Delete removes a webhook and its delivery log.
func (s *Store) Delete(ctx context.Context, id string) error {
	res, err := s.hooks.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("deleting webhook %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	if _, err := s.deliveries.DeleteMany(ctx, bson.D{{Key: "webhookId", Value: id}}); err != nil {
		return fmt.Errorf("deleting the deliveries of webhook %s: %w", id, err)
	}
	return nil
}

// Record logs one attempt.
func (s *Store) Record(ctx context.Context, d Delivery) error {
	if _, err := s.deliveries.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("recording a delivery of webhook %s: %w", d.WebhookID, err)
	}
	return nil
}

// Deliveries returns attempts start..end of a webhook, newest first (or
// oldest first when asc), and how many there are.
func (s *Store) Deliveries(ctx context.Context, id string, start, end int, asc bool) ([]Delivery, int64, error) {
	f := bson.D{{Key: "webhookId", Value: id}}
	n, err := s.deliveries.CountDocuments(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("counting deliveries of webhook %s: %w", id, err)
	}
	dir := -1
	if asc {
		dir = 1
	}
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: dir}, {Key: "seq", Value: dir}}).SetSkip(int64(start))
	if end > start {
		opts.SetLimit(int64(end - start))
	}
	cur, err := s.deliveries.Find(ctx, f, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("listing deliveries of webhook %s: %w", id, err)
	}
	out := []Delivery{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, 0, fmt.Errorf("listing deliveries of webhook %s: %w", id, err)
	}
	return out, n, nil
}
