package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Error is a failure with the HTTP status it maps to. Services return it
// for every known condition (not found, conflict, bad input); the gateway
// answers {"code": "<status>", "message": ...} with that status.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// StatusOf is the HTTP status an error maps to: the status of an *Error in
// the chain, 500 otherwise.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// List is the reply of every list operation: one page and the true total.
type List[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

// Handler adapts a typed operation to a micro endpoint: it decodes the JSON
// request (a malformed one is a 400), runs fn under a deadline, and answers
// with the JSON result or the error's status and message in micro's error
// headers (Nats-Service-Error-Code, Nats-Service-Error).
func Handler[Req any](timeout time.Duration, fn func(ctx context.Context, req Req) (any, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		var req Req
		if len(r.Data()) > 0 {
			if err := json.Unmarshal(r.Data(), &req); err != nil {
				respondError(r, Errorf(http.StatusBadRequest, "malformed request: %v", err))
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := fn(ctx, req)
		if err != nil {
			respondError(r, err)
			return
		}
		if err := r.RespondJSON(res); err != nil {
			respondError(r, fmt.Errorf("encoding reply: %w", err))
		}
	})
}

func respondError(r micro.Request, err error) {
	status := StatusOf(err)
	_ = r.Error(strconv.Itoa(status), err.Error(), nil)
}

// Call sends req to a control subject and decodes the reply into resp.
// Service errors come back as *Error; a missing service is a 503 and a
// deadline a 504, so the caller never has to guess.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	return call(ctx, nc, subject, req, resp, requestRetryingNoResponders)
}

// CallIdempotent is Call for requests that may safely run twice (reads).
// A request delivered to an instance that dies before it answers is never
// answered, and NATS cannot tell the caller; so each attempt gets a third
// of the deadline (at least minAttempt), and an attempt without a reply is
// sent again, to whichever member of the queue group is alive.
func CallIdempotent(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	return call(ctx, nc, subject, req, resp, requestRetryingLost)
}

// minAttempt is the shortest attempt of CallIdempotent.
const minAttempt = 5 * time.Second

func requestRetryingLost(ctx context.Context, nc *nats.Conn, subject string, body []byte) (*nats.Msg, error) {
	deadline, _ := ctx.Deadline()
	per := max(time.Until(deadline)/3, minAttempt)
	for {
		actx, cancel := context.WithTimeout(ctx, per)
		msg, err := requestRetryingNoResponders(actx, nc, subject, body)
		cancel()
		lost := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		if !lost || ctx.Err() != nil {
			return msg, err
		}
	}
}

type sender func(ctx context.Context, nc *nats.Conn, subject string, body []byte) (*nats.Msg, error)

func call(ctx context.Context, nc *nats.Conn, subject string, req, resp any, send sender) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding request to %s: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	msg, err := send(ctx, nc, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Errorf(http.StatusServiceUnavailable, "no service answers %s: is it running?", subject)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return Errorf(http.StatusGatewayTimeout, "%s did not answer in time", subject)
	case err != nil:
		return fmt.Errorf("requesting %s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		status, convErr := strconv.Atoi(code)
		if convErr != nil || status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		return &Error{Status: status, Message: msg.Header.Get(micro.ErrorHeader)}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("decoding reply from %s: %w", subject, err)
	}
	return nil
}

// noResponderGrace is how long a call waits for a service that has no
// instance subscribed: long enough to ride out a restart or a rolling
// upgrade. Nobody received the request, so sending it again is safe.
const noResponderGrace = 5 * time.Second

func requestRetryingNoResponders(ctx context.Context, nc *nats.Conn, subject string, body []byte) (*nats.Msg, error) {
	deadline := time.Now().Add(noResponderGrace)
	wait := 50 * time.Millisecond
	for {
		msg, err := nc.RequestWithContext(ctx, subject, body)
		if !errors.Is(err, nats.ErrNoResponders) || time.Now().Add(wait).After(deadline) {
			return msg, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}
