// Package domain holds what a deployment is and the rules that do not
// depend on how deployments are stored or where their model servers run.
package domain

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Type is where a deployment's model server runs.
type Type string

const (
	TypeLocal Type = "local" // `mlflow models serve` on this machine
	TypeGCP   Type = "gcp"   // a Compute Engine instance of its own
)

// ParseType checks a deployment type; empty means local, as in the
// original mlpanel.
func ParseType(s string) (Type, error) {
	switch Type(s) {
	case "", TypeLocal:
		return TypeLocal, nil
	case TypeGCP:
		return TypeGCP, nil
	}
	return "", fmt.Errorf("invalid type %q: use local or gcp", s)
}

// Status is the observed state of a deployment's model server.
type Status string

const (
	StatusPending  Status = "pending"  // recorded, not started yet
	StatusStarting Status = "starting" // launched (or being created), /ping not answering yet
	StatusRunning  Status = "running"  // /ping answers
	StatusStopping Status = "stopping"
	StatusStopped  Status = "stopped"
	StatusFailed   Status = "failed" // gave up after repeated crashes, or a cloud error
	StatusDeleted  Status = "deleted"
)

// Statuses are every status, in the order the OpenAPI enum lists them.
var Statuses = []Status{StatusPending, StatusStarting, StatusRunning, StatusSleeping, StatusStopping, StatusStopped, StatusFailed, StatusDeleted}

// ParseStatus checks a status given by a caller (a list filter).
func ParseStatus(s string) (Status, error) {
	names := make([]string, len(Statuses))
	for i, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
		names[i] = string(st)
	}
	return "", fmt.Errorf("invalid status %q: use one of %s", s, strings.Join(names, ", "))
}

// Desired is what the user asked for; the reconcile loop converges Status
// towards it. DesiredDeleted is final: nothing ever starts it again.
type Desired string

const (
	DesiredRunning Desired = "running"
	DesiredStopped Desired = "stopped"
	DesiredDeleted Desired = "deleted"
)

// Stage is a step of a start that takes long (a cloud instance), published
// as progress events while the status stays "starting".
type Stage string

const (
	StageCreatingInstance Stage = "creating-instance"
	StageWaitingForIP     Stage = "waiting-for-ip"
	StageWaitingForServer Stage = "waiting-for-server"
)

// Deployment is one registered model version served as a prediction
// endpoint. JSON names follow the original mlpanel (snake_case).
type Deployment struct {
	ID        string `json:"id" bson:"_id"`
	Seq       int64  `json:"-" bson:"seq"`
	ProjectID string `json:"project_id" bson:"projectId"`
	ModelID   string `json:"model_id" bson:"modelId"` // the registered model's name
	Version   string `json:"version" bson:"version"`  // resolved version number
	Alias     string `json:"alias,omitempty" bson:"alias,omitempty"`
	// FollowAlias is the alias the deployment follows: when it moves, the
	// new version is started beside the old one and takes the traffic.
	FollowAlias string `json:"follow_alias,omitempty" bson:"followAlias,omitempty"`
	// Rollovers is the history of those switches, oldest first.
	Rollovers []Rollover `json:"rollovers" bson:"rollovers,omitempty"`
	// RolloverError is why the last rollover failed while the old version
	// kept serving; cleared by the next successful one.
	RolloverError string `json:"rollover_error,omitempty" bson:"rolloverError,omitempty"`
	// AliasError says the followed alias is gone from the registry (the
	// last version keeps serving).
	AliasError string `json:"alias_error,omitempty" bson:"aliasError,omitempty"`
	// Next is the new version's server while a rollover proves it;
	// Retired are old servers draining before they stop.
	Next     *ServerRef  `json:"-" bson:"next,omitempty"`
	Retired  []ServerRef `json:"-" bson:"retired,omitempty"`
	ModelURI string      `json:"model_uri" bson:"modelUri"`
	// InputColumns are the names of the model's input signature, when it
	// has one: the gateway turns {"data": rows} into a dataframe with them.
	InputColumns []string  `json:"input_columns,omitempty" bson:"inputColumns,omitempty"`
	Type         Type      `json:"type" bson:"type"`
	DesiredState Desired   `json:"desired_state" bson:"desiredState"`
	Status       Status    `json:"status" bson:"status"`
	Stage        Stage     `json:"stage,omitempty" bson:"stage,omitempty"`
	Host         string    `json:"host,omitempty" bson:"host,omitempty"`
	Port         int       `json:"port,omitempty" bson:"port,omitempty"`
	URL          string    `json:"url,omitempty" bson:"url,omitempty"`
	InstanceName string    `json:"instance_name,omitempty" bson:"instanceName,omitempty"`
	Error        string    `json:"error,omitempty" bson:"error,omitempty"`
	RestartCount int       `json:"restart_count" bson:"restartCount"`
	CreatedBy    string    `json:"created_by,omitempty" bson:"createdBy,omitempty"`
	CreatedAt    time.Time `json:"created_at" bson:"createdAt"`
	UpdatedAt    time.Time `json:"updated_at" bson:"updatedAt"`
	// Pid and PidStart identify a local model server so a restarted
	// deployer adopts it instead of starting a second copy.
	Pid      int    `json:"pid,omitempty" bson:"pid,omitempty"`
	PidStart uint64 `json:"-" bson:"pidStart,omitempty"`
	// IdleTimeout and MinAwake say whether and when the model server
	// sleeps (SetIdle, Idle); MinAwake is nil until a caller gives it.
	IdleTimeout string `json:"idle_timeout,omitempty" bson:"idleTimeout,omitempty"`
	MinAwake    *int   `json:"-" bson:"minAwake,omitempty"`
	// SleepReason says why a sleeping deployment sleeps.
	SleepReason string `json:"sleep_reason,omitempty" bson:"sleepReason,omitempty"`
}

// MarshalJSON writes host, port and url as null while no model server
// runs, as the original mlpanel answered.
func (d Deployment) MarshalJSON() ([]byte, error) {
	type plain Deployment // without this method
	out := struct {
		plain
		Host     *string `json:"host"`
		Port     *int    `json:"port"`
		URL      *string `json:"url"`
		MinAwake int     `json:"min_awake"`
	}{plain: plain(d), MinAwake: d.Awake()}
	if out.Rollovers == nil {
		out.plain.Rollovers = []Rollover{} // a list, never null
	}
	if d.Host != "" {
		out.Host = &d.Host
	}
	if d.Port != 0 {
		out.Port = &d.Port
	}
	if d.URL != "" {
		out.URL = &d.URL
	}
	return json.Marshal(out)
}

// ModelURI is the registry URI `mlflow models serve` resolves against the
// project's tracking server.
func ModelURI(model, version string) string { return "models:/" + model + "/" + version }

// Deleted reports whether the deployment was deleted; it is hidden and
// never runs again.
func (d Deployment) Deleted() bool {
	return d.DesiredState == DesiredDeleted || d.Status == StatusDeleted
}

// Live reports whether a model server may exist for it.
func (d Deployment) Live() bool {
	return d.Status == StatusStarting || d.Status == StatusRunning || d.Status == StatusStopping
}

var versionRule = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)

// IsVersionNumber tells a version number from an alias.
func IsVersionNumber(s string) bool { return versionRule.MatchString(s) }

var aliasRule = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,254}$`)

// ValidateVersion checks a version or alias before it goes into a URL.
func ValidateVersion(s string) error {
	if s == "" || IsVersionNumber(s) || aliasRule.MatchString(s) {
		return nil
	}
	return fmt.Errorf("invalid version %q: give a version number (1, 2, ...), an alias, or nothing for the latest", s)
}
