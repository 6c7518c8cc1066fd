package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// Main runs a service's run function under a context that ends on SIGINT
// or SIGTERM, and exits 1 with the error if it fails. With -h (or -help,
// --help) it prints the settings of cfgs, the structs the command reads,
// with their defaults, instead.
func Main(name string, run func(ctx context.Context) error, cfgs ...any) {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help") {
		fmt.Printf("usage: %s\n\nSettings (environment variables, shown with their defaults):\n%s", name, conf.Usage(cfgs...))
		return
	}
	ctx, cancel := SignalContext()
	err := run(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Service is the whole main of a separately run service: -h lists its
// settings (the structs in settings); otherwise it loads its Config with
// load, connects (to MongoDB too when withMongo), and runs serve until
// SIGINT or SIGTERM, then closes the connections. A malformed setting or
// a failed connection exits 1 naming it.
func Service[C any](name string, settings []any, withMongo bool, load func() (C, error), serve func(ctx context.Context, cfg C, c *Conns) error) {
	Main(name, func(ctx context.Context) error {
		cfg, err := load()
		if err != nil {
			return err
		}
		c, err := Connect(ctx, name, withMongo)
		if err != nil {
			return err
		}
		defer c.Close()
		return serve(ctx, cfg, c)
	}, settings...)
}

// Conns are a separately run service's connections.
type Conns struct {
	NATS  *nats.Conn
	Mongo *mongo.Client // nil for services without state
	DB    *mongo.Database
	Log   *slog.Logger
}

// Connect loads Config (and MongoConfig when withMongo) and connects.
// A malformed setting stops it before anything is dialled.
func Connect(ctx context.Context, name string, withMongo bool) (*Conns, error) {
	var cfg Config
	var mcfg MongoConfig
	err := conf.Load(&cfg)
	if withMongo {
		err = errors.Join(err, conf.Load(&mcfg))
	}
	if err != nil {
		return nil, err
	}
	log := Logger(cfg.LogLevel)
	c := &Conns{Log: log}
	if c.NATS, err = NATS(cfg.NATSURL, name, log); err != nil {
		return nil, err
	}
	if withMongo {
		if c.Mongo, err = Mongo(ctx, mcfg.MongoURI); err != nil {
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
