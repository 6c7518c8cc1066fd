package app

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mlpanel/mlpanel/pkg/events"
)

func notFound(id string) error {
	return events.Errorf(http.StatusNotFound, "deployment %q not found: list deployments with GET /deployments", id)
}

func badRequest(err error) error {
	return &events.Error{Status: http.StatusBadRequest, Message: err.Error()}
}

func conflict(format string, args ...any) error {
	return events.Errorf(http.StatusConflict, format, args...)
}

// storeErr turns store failures into what the caller should see.
func storeErr(id string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound(id)
	}
	return fmt.Errorf("deployment %s: %w", id, err)
}
