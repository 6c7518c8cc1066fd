// Package embeddedtest gives store tests a real database: embedded
// FerretDB on SQLite, the one the embedded default uses.
package embeddedtest

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

// Database starts FerretDB in a temporary folder and returns the database
// name in it; both go when the test ends.
func Database(t testing.TB, name string) *mongo.Database {
	t.Helper()
	ctx := context.Background()
	f, err := embedded.StartFerretDB(ctx, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	client, err := boot.Mongo(ctx, f.URI())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(name)
}
