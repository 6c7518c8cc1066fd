package app

import (
	"net/http"

	"github.com/mlpanel/mlpanel/pkg/events"
)

func notFound(id string) error {
	return events.Errorf(http.StatusNotFound, "deployment %q not found: list deployments with GET /deployments", id)
}

// storeErr turns store failures into what the caller should see.
func storeErr(id string, err error) error {
	return events.StoreError(err, ErrNotFound, notFound(id), "deployment "+id)
}
