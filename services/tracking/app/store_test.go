package app

import (
	"encoding/json"
	"testing"
)

// The projects service's answer names the database the direct reads
// open: the folder's mlflow.db, or the PostgreSQL database by name (the
// password stays in the tracking service's own setting).
func TestProjectStoreNamesItsDatabase(t *testing.T) {
	for raw, want := range map[string]string{
		`{"id": "1", "path": "/home/p/1"}`:                                                              "/home/p/1",
		`{"id": "1", "path": "/home/p/1", "backend": "sqlite"}`:                                         "/home/p/1",
		`{"id": "1", "path": "/home/p/1", "backend": "postgresql", "database": "mlpanel_project_1_ab"}`: "postgresql:mlpanel_project_1_ab",
		`{"id": "1", "path": "/home/p/1", "backend": "postgresql"}`:                                     "",
		`{"id": "1", "path": "/home/p/1", "backend": "mysql", "database": "m"}`:                         "mysql:m",
	} {
		var p Project
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			t.Fatal(err)
		}
		if got := p.Store(); got != want {
			t.Errorf("%s: Store() = %q, want %q", raw, got, want)
		}
	}
}
