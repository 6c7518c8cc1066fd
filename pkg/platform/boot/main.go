package boot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// Main runs a service's run function under a context that ends on SIGINT
// or SIGTERM, and exits 1 with the error if it fails.
func Main(name string, run func(ctx context.Context) error) {
	ctx, cancel := SignalContext()
	err := run(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Conns are a separately run service's connections.
type Conns struct {
	NATS  *nats.Conn
	Mongo *mongo.Client // nil for services without state
	DB    *mongo.Database
	Log   *slog.Logger
}

// Connect reads MLPANEL_NATS_URL, MLPANEL_MONGO_URI (when withMongo) and
// MLPANEL_LOG_LEVEL, fails on any malformed setting read so far, and
// connects.
func Connect(ctx context.Context, name string, r *conf.Reader, withMongo bool) (*Conns, error) {
	natsURL := r.String("NATS_URL", "nats://127.0.0.1:4222")
	mongoURI := r.String("MONGO_URI", "mongodb://127.0.0.1:27017")
	log := Logger(r.String("LOG_LEVEL", "info"))
	if err := r.Err(); err != nil {
		return nil, err
	}
	c := &Conns{Log: log}
	var err error
	if c.NATS, err = NATS(natsURL, name, log); err != nil {
		return nil, err
	}
	if withMongo {
		if c.Mongo, err = Mongo(ctx, mongoURI); err != nil {
			c.NATS.Close()
			return nil, err
		}
		c.DB = c.Mongo.Database(Database)
	}
	return c, nil
}

// Close drains NATS and disconnects MongoDB. nc.Drain alone returns at
// once, and a main that returned then would exit with delivered requests
// unanswered, so Close waits for the connection to close.
func (c *Conns) Close() {
	closed := make(chan struct{})
	c.NATS.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := c.NATS.Drain(); err != nil {
		c.NATS.Close()
	} else {
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			c.NATS.Close()
		}
	}
	if c.Mongo != nil {
		_ = c.Mongo.Disconnect(context.Background())
	}
}
