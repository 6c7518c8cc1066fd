package app

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mlpanel/mlpanel/pkg/events"
)

func notFound(ref string) error {
	return events.Errorf(http.StatusNotFound, "project %q not found: list projects with GET /projects", ref)
}

func badRequest(err error) error {
	return &events.Error{Status: http.StatusBadRequest, Message: err.Error()}
}

func conflict(format string, args ...any) error {
	return events.Errorf(http.StatusConflict, format, args...)
}

func duplicateName(name string) error {
	return conflict("a project named %q already exists: choose another name", name)
}

// storeErr turns store failures into what the caller should see.
func storeErr(ref string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound(ref)
	}
	return fmt.Errorf("project %s: %w", ref, err)
}
