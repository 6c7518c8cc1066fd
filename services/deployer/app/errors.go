package app

import (
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
)

func notFound(id string) error {
	return errs.NotFoundf("deployment %q not found: list deployments with GET /deployments", id)
}

// storeErr turns store failures into what the caller should see.
func storeErr(id string, err error) error {
	return events.StoreError(err, ErrNotFound, notFound(id), "deployment "+id)
}
