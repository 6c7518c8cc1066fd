package mlflowdb

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
)

// EnsureIndexes adds the panel's indexes (mlflowschema.Indexes) to the
// database at path, which no server may be using: Prepare runs it before
// each start, so a project made before the indexes existed gets them on
// its next start. A missing file stays missing.
func EnsureIndexes(ctx context.Context, path string) error {
	return withIndexes(ctx, path, mlflowschema.EnsureIndexes)
}

// dropIndexes takes the panel's indexes off before MLflow migrates the
// database, so that its migrations (which on SQLite copy tables to alter
// them) see MLflow's schema only; EnsureIndexes puts them back after.
func dropIndexes(ctx context.Context, path string) error {
	return withIndexes(ctx, path, mlflowschema.DropIndexes)
}

func withIndexes(ctx context.Context, path string, do func(context.Context, mlflowschema.Execer, mlflowschema.Dialect) error) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := open(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := do(ctx, db, mlflowschema.SQLite); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return db.Close()
}
