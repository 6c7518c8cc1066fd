package events

import "strings"

const (
	// StreamName is the JetStream stream that stores every state change.
	StreamName = "MLPANEL_EVENTS"
	// SubjectPrefix starts every event subject; the stream captures Prefix + ".>".
	SubjectPrefix = "mlpanel.events"
	// ControlPrefix starts every request/reply subject: mlpanel.<service>.<operation>.
	ControlPrefix = "mlpanel"
)

// Subject is where an event about one entity is published:
// mlpanel.events.<entity>.<id>.<type>, e.g. mlpanel.events.deployment.7.running.
// Subscribers filter with wildcards (mlpanel.events.deployment.*.running,
// mlpanel.events.project.>).
func Subject(entity, id, typ string) string {
	return strings.Join([]string{SubjectPrefix, token(entity), token(id), token(typ)}, ".")
}

// ControlSubject is the request/reply subject of one service operation.
func ControlSubject(service, operation string) string {
	return ControlPrefix + "." + service + "." + operation
}

// token keeps a value from breaking the subject hierarchy: NATS treats '.'
// as a separator and '*', '>' and white space as special.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}
