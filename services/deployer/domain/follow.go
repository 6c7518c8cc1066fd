package domain

import (
	"fmt"
	"strings"
	"time"
)

// RolloverResult is how a switch from one version to another ended.
type RolloverResult string

const (
	RolloverInProgress RolloverResult = "in_progress" // the new version's server is starting
	RolloverSucceeded  RolloverResult = "succeeded"   // predict traffic goes to the new version
	RolloverFailed     RolloverResult = "failed"      // the new version did not start or answer; the old one kept serving
	// RolloverInterrupted: a stop, a delete, a restart of the deployer or
	// a crash of the serving server ended it before the switch; the old
	// version kept serving and a following deployment tries again.
	RolloverInterrupted RolloverResult = "interrupted"
)

// Rollover is one switch of a deployment that follows an alias, kept in
// its history.
type Rollover struct {
	From     string         `json:"from" bson:"from"`
	To       string         `json:"to" bson:"to"`
	Started  time.Time      `json:"started" bson:"started"`
	Finished *time.Time     `json:"finished,omitempty" bson:"finished,omitempty"`
	Result   RolloverResult `json:"result" bson:"result"`
	// Check says how the new version was proven before traffic moved.
	Check string `json:"check,omitempty" bson:"check,omitempty"`
	Error string `json:"error,omitempty" bson:"error,omitempty"`
}

// MaxRollovers bounds the history a deployment keeps (the oldest go).
const MaxRollovers = 50

// ServerRef is where a model server that is not (or no longer) the
// serving one runs: the next version's while a rollover proves it, or the
// old one's while it drains. Recorded so a restarted deployer finds them.
type ServerRef struct {
	Version      string `bson:"version"`
	Host         string `bson:"host,omitempty"`
	Port         int    `bson:"port,omitempty"`
	URL          string `bson:"url,omitempty"`
	InstanceName string `bson:"instanceName,omitempty"`
	Pid          int    `bson:"pid,omitempty"`
	PidStart     uint64 `bson:"pidStart,omitempty"`
}

// Serving is the reference of the server the deployment serves with now.
func (d Deployment) Serving() ServerRef {
	return ServerRef{Version: d.Version, Host: d.Host, Port: d.Port, URL: d.URL,
		InstanceName: d.InstanceName, Pid: d.Pid, PidStart: d.PidStart}
}

// With is d as if ref were its serving server: what a backend needs to
// start or adopt that server.
func (d Deployment) With(ref ServerRef) Deployment {
	d.Version, d.ModelURI = ref.Version, ModelURI(d.ModelID, ref.Version)
	d.Host, d.Port, d.URL, d.InstanceName, d.Pid, d.PidStart = ref.Host, ref.Port, ref.URL, ref.InstanceName, ref.Pid, ref.PidStart
	return d
}

// Follows reports whether the deployment follows an alias.
func (d Deployment) Follows() bool { return d.FollowAlias != "" }

// LastRollover is the newest entry of the history, if any.
func (d *Deployment) LastRollover() *Rollover {
	if len(d.Rollovers) == 0 {
		return nil
	}
	return &d.Rollovers[len(d.Rollovers)-1]
}

// BeginRollover records a switch to version `to` that starts now.
func (d *Deployment) BeginRollover(to string, now time.Time) {
	d.Rollovers = append(d.Rollovers, Rollover{From: d.Version, To: to, Started: now, Result: RolloverInProgress})
	if n := len(d.Rollovers); n > MaxRollovers {
		d.Rollovers = append([]Rollover(nil), d.Rollovers[n-MaxRollovers:]...)
	}
	d.Next = &ServerRef{Version: to}
}

// EndRollover closes the rollover in progress.
func (d *Deployment) EndRollover(result RolloverResult, check, reason string, now time.Time) {
	d.Next = nil
	last := d.LastRollover()
	if last == nil || last.Result != RolloverInProgress {
		return
	}
	last.Result, last.Check, last.Error = result, check, reason
	last.Finished = &now
}

// FailedTo reports whether the last rollover tried version v and failed:
// a following deployment does not start a broken version again on every
// resync, only when the alias is set again.
func (d Deployment) FailedTo(v string) bool {
	if len(d.Rollovers) == 0 {
		return false
	}
	last := d.Rollovers[len(d.Rollovers)-1]
	return last.To == v && last.Result == RolloverFailed
}

// ParseFollow reads what a caller asked to deploy: a version, an alias to
// resolve once, or an alias to follow, given as version "@alias" or as
// follow_alias (both may be given if they agree). It returns the version
// to resolve now and the alias to follow ("" for none).
func ParseFollow(version, followAlias string) (resolve, follow string, err error) {
	version, followAlias = strings.TrimSpace(version), strings.TrimSpace(followAlias)
	followAlias = strings.TrimPrefix(followAlias, "@")
	if a, ok := strings.CutPrefix(version, "@"); ok {
		if a == "" {
			return "", "", fmt.Errorf(`version "@" names no alias: give "@champion" to follow the alias champion`)
		}
		if followAlias != "" && followAlias != a {
			return "", "", fmt.Errorf("version %q and follow_alias %q disagree: give one alias to follow", version, followAlias)
		}
		followAlias, version = a, a
	}
	if followAlias == "" {
		return version, "", ValidateVersion(version)
	}
	if !aliasRule.MatchString(followAlias) || IsVersionNumber(followAlias) {
		return "", "", fmt.Errorf("invalid follow_alias %q: give an alias name such as champion (letters, digits, _ and -)", followAlias)
	}
	if version != "" && version != followAlias {
		return "", "", fmt.Errorf("version %q and follow_alias %q disagree: a deployment that follows an alias serves the version the alias points to; leave version out or give \"@%s\"", version, followAlias, followAlias)
	}
	return followAlias, followAlias, nil
}
