package app

import (
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
)

func notFound(ref string) error {
	return errs.NotFoundf("project %q not found: list projects with GET /projects", ref)
}

func duplicateName(name string) error {
	return errs.Conflictf("a project named %q already exists: choose another name", name)
}

// storeErr turns store failures into what the caller should see.
func storeErr(ref string, err error) error {
	return events.StoreError(err, ErrNotFound, notFound(ref), "project "+ref)
}
