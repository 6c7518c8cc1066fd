// Package errs is the small set of error kinds domain and application
// code returns: what went wrong in the domain's terms, with a message that
// says what to do. It knows nothing of HTTP or NATS; the transport edges
// map kinds to statuses in one place (pkg/events: the NATS replies the
// gateway turns into HTTP answers), in the manner of ardanlabs' errs and
// wild-workouts' SlugError.
package errs

import (
	"errors"
	"fmt"
)

// Kind is what kind of failure an error is.
type Kind int

const (
	// Internal is anything without a kind: a bug or a failure the caller
	// cannot act on.
	Internal Kind = iota
	// Invalid: the request is malformed or breaks a rule; fix it and retry.
	Invalid
	// NotFound: the thing named does not exist (or the caller may not see it).
	NotFound
	// Conflict: the request clashes with the current state (a taken name,
	// a project that must be stopped first).
	Conflict
	// Forbidden: the caller may see the thing but not do this to it.
	Forbidden
	// Unavailable: a dependency or resource is not there now (no free
	// port, a service not answering); the same request may work later.
	Unavailable
	// Upstream: a server the panel runs (a project's MLflow) failed the call.
	Upstream
	// Timeout: a server the panel runs did not answer in time; the work
	// may or may not have been done, so check before retrying a write.
	Timeout
)

var names = [...]string{"internal", "invalid", "not found", "conflict", "forbidden", "unavailable", "upstream", "timeout"}

func (k Kind) String() string {
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a failure of a kind, with the message users see.
type Error struct {
	Kind    Kind
	Message string
	// Relayed is the status code a server the panel runs (a project's
	// MLflow) answered, when the panel passes that answer on as it is;
	// zero for the panel's own errors. It is data about the upstream
	// answer, not a choice of the app: MLflow was reached and spoke about
	// the request (a 401, 429 or 500 of its own) and no kind says that as
	// precisely, so the edge answers with it instead of the kind's status.
	// Kind still says what the answer means, for app code that decides.
	Relayed int
}

func (e *Error) Error() string { return e.Message }

// New is an error of kind with a formatted message.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Invalidf, NotFoundf, Conflictf, Forbiddenf, Unavailablef, Upstreamf and
// Timeoutf are New of their kind.
func Invalidf(format string, args ...any) *Error     { return New(Invalid, format, args...) }
func NotFoundf(format string, args ...any) *Error    { return New(NotFound, format, args...) }
func Conflictf(format string, args ...any) *Error    { return New(Conflict, format, args...) }
func Forbiddenf(format string, args ...any) *Error   { return New(Forbidden, format, args...) }
func Unavailablef(format string, args ...any) *Error { return New(Unavailable, format, args...) }
func Upstreamf(format string, args ...any) *Error    { return New(Upstream, format, args...) }
func Timeoutf(format string, args ...any) *Error     { return New(Timeout, format, args...) }

// Relay is an error of kind carrying status, what a server the panel
// runs answered, for the edge to pass on (see Error.Relayed).
func Relay(kind Kind, status int, format string, args ...any) *Error {
	e := New(kind, format, args...)
	e.Relayed = status
	return e
}

// AsInvalid is err (a validation error that already says what to do) as an
// Invalid error with err's message.
func AsInvalid(err error) *Error { return &Error{Kind: Invalid, Message: err.Error()} }

// KindOf is the kind of the first *Error in err's chain; Internal when
// there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is of kind.
func Is(err error, kind Kind) bool { return err != nil && KindOf(err) == kind }
