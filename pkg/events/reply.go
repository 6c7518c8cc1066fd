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

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
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

// kindStatus is where the domain's error kinds (pkg/platform/errs) become
// the statuses of replies, which the gateway answers as they are: the one
// place a service's errors meet HTTP.
var kindStatus = map[errs.Kind]int{
	errs.Invalid:     http.StatusBadRequest,
	errs.NotFound:    http.StatusNotFound,
	errs.Conflict:    http.StatusConflict,
	errs.Forbidden:   http.StatusForbidden,
	errs.Unavailable: http.StatusServiceUnavailable,
	errs.Upstream:    http.StatusBadGateway,
	errs.Timeout:     http.StatusGatewayTimeout,
}

// StatusOf is the HTTP status an error maps to: the status of an *Error in
// the chain (a transport's own, or a reply relayed from another service),
// else the status an upstream server answered when the error relays it
// (errs.Error.Relayed), else that of its kind (errs), 500 for an error of
// no kind.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	var ke *errs.Error
	if errors.As(err, &ke) && ke.Relayed >= 400 && ke.Relayed <= 599 {
		return ke.Relayed
	}
	if s, ok := kindStatus[errs.KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// AsDomain turns another service's error reply (an *Error from Call) into
// the kind of error app code checks (errs.NotFound, ...), with the same
// message, so code that calls a service through an adapter decides on
// kinds, not statuses. A status no kind has (413, 429, ...) and any other
// error are returned as they are.
func AsDomain(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	for kind, status := range kindStatus {
		if status == e.Status {
			return &errs.Error{Kind: kind, Message: e.Message}
		}
	}
	return err
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
//
// micro delivers an endpoint's requests one after another, so fn runs in
// its own goroutine: one slow read must not hold up the next request, nor
// the ack of requests that asked for one (see CallIdempotent). The
// deadline is timeout or, when sooner, the caller's own (TimeoutHeader)
// less a margin for the reply, so the work is abandoned before the caller
// stops waiting for it and is never done for nobody.
func Handler[Req any](timeout time.Duration, fn func(ctx context.Context, req Req) (any, error)) micro.Handler {
	return handler(nil, timeout, fn)
}

// handler is Handler; with nc it also ends a request's context when its
// caller says it has gone (CancelHeader), so a read whose client hung up
// stops waiting on MLflow at once instead of at the deadline.
func handler[Req any](nc *nats.Conn, timeout time.Duration, fn func(ctx context.Context, req Req) (any, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		ctx := WithRequestID(context.Background(), r.Headers().Get(RequestIDHeader))
		ctx, cancel := context.WithTimeout(ctx, HandlerDeadline(timeout, r.Headers().Get(TimeoutHeader)))
		var cancelSub *nats.Subscription
		if subject := r.Headers().Get(CancelHeader); nc != nil && subject != "" {
			// Subscribed before the ack, so a caller that leaves right
			// after it is heard.
			cancelSub, _ = nc.Subscribe(subject, func(*nats.Msg) { cancel() })
		}
		acked := r.Headers().Get(AckHeader) != ""
		if acked {
			_ = r.Respond(nil, micro.WithHeaders(micro.Headers{AckHeader: {"1"}}))
		}
		go func() {
			defer cancel()
			if acked {
				// Acks go on while the work does, so the caller can tell
				// a slow read (acks keep coming) from an instance that
				// died with it (they stop), and send only the latter again.
				stop := make(chan struct{})
				defer close(stop)
				go heartbeat(r, stop)
			}
			if cancelSub != nil {
				defer func() { _ = cancelSub.Unsubscribe() }()
			}
			var req Req
			if len(r.Data()) > 0 {
				if err := json.Unmarshal(r.Data(), &req); err != nil {
					replyError(r, Errorf(http.StatusBadRequest, "malformed request: %v", err))
					return
				}
			}
			res, err := fn(ctx, req)
			if err != nil {
				replyError(r, err)
				return
			}
			out, err := json.Marshal(res)
			if err != nil {
				replyError(r, fmt.Errorf("encoding reply: %w", err))
				return
			}
			_ = r.Respond(out)
		}()
	})
}

// Headers of the control plane beside micro's own.
const (
	// TimeoutHeader carries how long the caller still waits, in
	// milliseconds, when it sent the request. A duration, not a time, so
	// clocks of different machines need not agree.
	TimeoutHeader = "Mlpanel-Timeout-Ms"
	// AckHeader on a request asks the service to acknowledge receipt at
	// once with an empty message carrying the same header; the reply
	// follows.
	AckHeader = "Mlpanel-Ack"
	// CancelHeader names a subject where the caller publishes when it
	// stops waiting before the deadline (its client went away); reads
	// only, since a write cut in the middle is worse than one finished.
	CancelHeader = "Mlpanel-Cancel"
)

// replyMargin is what a service keeps of the caller's time for its reply
// to travel back: a tenth, at most a second.
func replyMargin(d time.Duration) time.Duration { return min(d/10, time.Second) }

// HandlerDeadline is how long a service works on a request: its own
// timeout, or the caller's remaining time (TimeoutHeader, in ms) less
// the reply margin when that is shorter. This is the one place where a
// service's deadline is derived from its caller's.
func HandlerDeadline(own time.Duration, callerMs string) time.Duration {
	ms, err := strconv.ParseInt(callerMs, 10, 64)
	if err != nil || ms <= 0 {
		return own
	}
	caller := time.Duration(ms) * time.Millisecond
	return max(min(own, caller-replyMargin(caller)), time.Millisecond)
}

// replyError answers with a service error after the handler returned
// (handler runs each request in its own goroutine). micro's Error records
// the error in the request, which micro reads for its statistics once the
// handler returns: from another goroutine that is a data race. The same
// message goes out through Respond, which records nothing unless the
// publish itself fails.
func replyError(r micro.Request, err error) {
	_ = r.Respond(nil, micro.WithHeaders(micro.Headers{
		micro.ErrorHeader:     {err.Error()},
		micro.ErrorCodeHeader: {strconv.Itoa(StatusOf(err))},
	}))
}

// Call sends req to a control subject and decodes the reply into resp.
// Service errors come back as *Error; a missing service is a 503 and a
// deadline a 504, so the caller never has to guess.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	return call(ctx, nc, subject, req, resp, requestRetryingNoResponders)
}

// CallIdempotent is Call for requests that may safely run twice (reads).
// A request that no instance took (none subscribed, or the one it was
// delivered to died before reading it) is sent again, to whichever member
// of the queue group is alive. It asks for an ack (AckHeader), and only a
// request without one within ackWait is sent again: a read that was
// taken is never resent because it is slow, since running a heavy query
// again on a busy server only makes it slower for everyone.
func CallIdempotent(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	return call(ctx, nc, subject, req, resp, requestAcked)
}

// ackWait is how long CallIdempotent waits for an ack before it sends
// the request again. Services ack before decoding, so this covers only
// the network and a service's scheduling.
var ackWait = 2 * time.Second

func requestAcked(ctx context.Context, nc *nats.Conn, subject string, body []byte) (*nats.Msg, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribing for the reply to %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	defer func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			_ = nc.Publish(inbox+".cancel", nil) // the caller left: the service stops too
		}
	}()
	graceEnds := time.Now().Add(noResponderGrace)
	wait := 50 * time.Millisecond
	for {
		m := nats.NewMsg(subject)
		m.Reply, m.Data = inbox, body
		m.Header.Set(AckHeader, "1")
		m.Header.Set(CancelHeader, inbox+".cancel")
		setHeaders(ctx, m)
		if err := nc.PublishMsg(m); err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, ackWait)
		first, err := sub.NextMsgWithContext(actx)
		cancel()
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			if time.Now().Add(wait).After(graceEnds) {
				return nil, nats.ErrNoResponders
			}
			select {
			case <-ctx.Done():
				return nil, nats.ErrNoResponders
			case <-time.After(wait):
			}
			wait = min(wait*2, time.Second)
			continue
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil: // no ack: nobody took it, send it again
			continue
		case first.Header.Get(AckHeader) == "":
			return first, nil // a service that does not ack answered at once
		}
		// Taken: the reply counts however late, as long as the service
		// keeps acking; silence means the instance died with the request,
		// which is then sent again to one that lives.
		if msg, err := awaitReply(ctx, sub); !errors.Is(err, errSilent) {
			return msg, err
		}
	}
}

// heartbeatEvery is how often a service acks a request it is still
// working on; a caller that hears nothing for silentAfter takes the
// instance for dead.
var (
	heartbeatEvery = time.Second
	silentAfter    = 5 * time.Second
)

var errSilent = errors.New("the service stopped acking")

func heartbeat(r micro.Request, stop <-chan struct{}) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			_ = r.Respond(nil, micro.WithHeaders(micro.Headers{AckHeader: {"1"}}))
		}
	}
}

// awaitReply waits for the reply after an ack, errSilent when the acks
// stop before it comes.
func awaitReply(ctx context.Context, sub *nats.Subscription) (*nats.Msg, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, silentAfter)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, errSilent
		case msg.Header.Get(AckHeader) == "":
			return msg, nil
		}
	}
}

// setHeaders tells the service how long the caller waits (TimeoutHeader)
// and which HTTP request the call serves (RequestIDHeader).
func setHeaders(ctx context.Context, m *nats.Msg) {
	if d, ok := ctx.Deadline(); ok {
		m.Header.Set(TimeoutHeader, strconv.FormatInt(max(time.Until(d).Milliseconds(), 1), 10))
	}
	if id := RequestID(ctx); id != "" {
		m.Header.Set(RequestIDHeader, id)
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
	m := nats.NewMsg(subject)
	m.Data = body
	for {
		setHeaders(ctx, m)
		msg, err := nc.RequestMsgWithContext(ctx, m)
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
