// Package domain holds what a project is and the rules that do not depend
// on how projects are stored, served or run.
package domain

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Status is the observed state of a project's tracking server.
type Status string

const (
	StatusTerminated Status = "terminated"
	StatusStarting   Status = "starting"
	StatusRunning    Status = "running"
	// StatusUnhealthy is a live server that stopped answering /health
	// (hung, overloaded, SIGSTOPped); it is running again once it answers.
	StatusUnhealthy Status = "unhealthy"
	StatusFailed    Status = "failed"
	StatusArchived  Status = "archived"
)

// Statuses are every status, in the order the OpenAPI enum lists them.
var Statuses = []Status{StatusTerminated, StatusStarting, StatusRunning, StatusFailed, StatusArchived}

// ParseStatus checks a status given by a caller (a list filter).
func ParseStatus(s string) (Status, error) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(Statuses))
	for i, st := range Statuses {
		names[i] = string(st)
	}
	return "", fmt.Errorf("status=%q: use one of %s", s, strings.Join(names, ", "))
}

// Desired is what the user asked for; the reconcile loop converges
// Status towards it.
type Desired string

const (
	DesiredRunning Desired = "running"
	DesiredStopped Desired = "stopped"
)

// Project is one ML project: one MLflow tracking server with its own
// SQLite database and artifact folder. Field names follow the original
// mlpanel's JSON (camelCase).
type Project struct {
	ID           string  `json:"id" bson:"_id"`
	Seq          int64   `json:"-" bson:"seq"` // numeric id, for sorting ids as numbers
	Name         string  `json:"name" bson:"name"`
	Description  string  `json:"description" bson:"description"`
	Status       Status  `json:"status" bson:"status"`
	DesiredState Desired `json:"desiredState" bson:"desiredState"`
	Port         int     `json:"port" bson:"port"`
	MlflowURI    string  `json:"mlflowUri" bson:"mlflowUri"`
	// InternalURL is where other services reach the tracking server
	// directly; MlflowURI may instead be the gateway's public proxy.
	InternalURL string `json:"internalUrl" bson:"internalUrl"`
	Path        string `json:"path" bson:"path"`
	CreatedBy   string `json:"createdBy,omitempty" bson:"createdBy,omitempty"`
	// CreatedByID is the creator's account id: it, not the name, makes
	// them the owner (events.Creator).
	CreatedByID  string    `json:"createdById,omitempty" bson:"createdById,omitempty"`
	CreatedAt    time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt" bson:"updatedAt"`
	LastError    string    `json:"lastError,omitempty" bson:"lastError,omitempty"`
	RestartCount int       `json:"restartCount" bson:"restartCount"`
	// Pid and PidStart identify the running server so a restarted service
	// adopts it instead of starting a second copy.
	Pid      int    `json:"pid,omitempty" bson:"pid,omitempty"`
	PidStart uint64 `json:"-" bson:"pidStart,omitempty"`
	// RuntimeRef is a cluster runtime's handle of the server (app.Ref.Name:
	// a Nomad job id, a Deployment's namespace/name), for adoption.
	RuntimeRef string `json:"-" bson:"runtimeRef,omitempty"`
	// RanBefore is set once the server has answered: from then on its
	// database holds the project's data, and a missing one is a loss to
	// report, not an empty project to start.
	RanBefore bool `json:"-" bson:"ranBefore,omitempty"`
	// IdleTimeout overrides MLPANEL_IDLE_TIMEOUT for this project ("" uses
	// it, "0" never sleeps); see ParseIdleTimeout.
	IdleTimeout string `json:"idleTimeout,omitempty" bson:"idleTimeout,omitempty"`
	// SleepReason says why a sleeping project sleeps (idle, or put to
	// sleep to make room under MLPANEL_MAX_AWAKE).
	SleepReason string `json:"sleepReason,omitempty" bson:"sleepReason,omitempty"`
	// Backend is where the MLflow server keeps the project's runs:
	// BackendSQLite (mlflow.db in Path; absent on records made before
	// there was a choice) or BackendPostgreSQL, in Database on the server
	// of MLPANEL_PROJECT_DB_URL.
	Backend  Backend `json:"backend,omitempty" bson:"backend,omitempty"`
	Database string  `json:"database,omitempty" bson:"database,omitempty"`
}

// Backend is a project's MLflow backend store.
type Backend string

const (
	BackendSQLite     Backend = "sqlite"
	BackendPostgreSQL Backend = "postgresql"
)

// ParseBackend checks a backend given by a caller; empty is SQLite.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(strings.TrimSpace(s)); b {
	case "", BackendSQLite:
		return BackendSQLite, nil
	case BackendPostgreSQL:
		return b, nil
	}
	return "", fmt.Errorf("backend=%q: use sqlite (the default: a database file in the project's folder) or postgresql (a database on the server of MLPANEL_PROJECT_DB_URL)", s)
}

// OnPostgreSQL reports whether the project's runs live in PostgreSQL.
func (p Project) OnPostgreSQL() bool { return p.Backend == BackendPostgreSQL }

var nameRule = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,62}$`)

// NameRule is the rule a name must satisfy, in words for error messages.
const NameRule = "a project name starts with a letter and has at most 63 letters, digits, '_', '.' or '-'"

// ValidateName checks a project name. Names start with a letter and ids
// are numbers, so "{id}" in a path is never ambiguous.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("name is required: %s", NameRule)
	}
	if !nameRule.MatchString(name) {
		return fmt.Errorf("invalid name %q: %s", name, NameRule)
	}
	return nil
}

// MaxDescription bounds a description so one record stays small.
const MaxDescription = 4096

// ValidateDescription checks a description's length.
func ValidateDescription(d string) error {
	if len(d) > MaxDescription {
		return fmt.Errorf("description is %d bytes long; at most %d are allowed", len(d), MaxDescription)
	}
	return nil
}

// Active reports whether the server is meant to run or still runs, which
// is when deleting or archiving must wait for a terminate.
func (p Project) Active() bool {
	return p.DesiredState == DesiredRunning || p.Status == StatusStarting || p.Status == StatusRunning || p.Status == StatusUnhealthy
}
