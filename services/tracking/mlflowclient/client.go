// Package mlflowclient is a small typed client for the parts of the MLflow
// tracking server REST API (/api/2.0/mlflow/...) that mlpanel reads and
// writes: experiments, runs, metric history, artifact listings and the
// model registry. It knows nothing about projects or NATS.
package mlflowclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
)

// Error codes MLflow answers with (databricks error codes).
const (
	CodeNotFound         = "RESOURCE_DOES_NOT_EXIST"
	CodeInvalidParameter = "INVALID_PARAMETER_VALUE"
	CodeAlreadyExists    = "RESOURCE_ALREADY_EXISTS"
	CodeBadRequest       = "BAD_REQUEST"
	CodeInvalidState     = "INVALID_STATE"
)

// APIError is an error answered by the tracking server itself: it was
// reached and said no.
type APIError struct {
	HTTPStatus int
	Code       string // error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message    string
	Endpoint   string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("MLflow %s answered HTTP %d: %s", e.Endpoint, e.HTTPStatus, e.Message)
	}
	return fmt.Sprintf("MLflow %s: %s: %s", e.Endpoint, e.Code, e.Message)
}

// Kind is what the answer means in the panel's terms (pkg/platform/errs):
// by MLflow's error code where the panel knows it, else by the HTTP
// status. This client is where MLflow's HTTP meets the domain, so the
// tracking app decides on kinds and never reads a status; an answer of no
// kind the panel has (401, 429, 500, ...) is Upstream.
func (e *APIError) Kind() errs.Kind {
	switch e.Code {
	case CodeNotFound:
		return errs.NotFound
	case CodeInvalidParameter, CodeBadRequest:
		return errs.Invalid
	case CodeAlreadyExists, CodeInvalidState:
		return errs.Conflict
	}
	switch e.HTTPStatus {
	case http.StatusBadRequest:
		return errs.Invalid
	case http.StatusForbidden:
		return errs.Forbidden
	case http.StatusNotFound:
		return errs.NotFound
	case http.StatusConflict:
		return errs.Conflict
	}
	return errs.Upstream
}

// KnownCode reports whether MLflow named the failure with an error code
// whose meaning the panel knows (so its message alone says it all).
func (e *APIError) KnownCode() bool {
	switch e.Code {
	case CodeNotFound, CodeInvalidParameter, CodeBadRequest, CodeAlreadyExists, CodeInvalidState:
		return true
	}
	return false
}

// InShape reports whether the answer came in MLflow's own error shape
// (JSON with an error_code): MLflow itself spoke, not a proxy in front.
func (e *APIError) InShape() bool { return e.Code != "" }

// Unknown reports an answer that says the server does not know the
// endpoint (a 404 not in MLflow's shape): not an MLflow of a version the
// panel speaks to.
func (e *APIError) Unknown() bool { return e.HTTPStatus == http.StatusNotFound && e.Code == "" }

// ClientError reports a 4xx: the server took the request as the caller's
// fault.
func (e *APIError) ClientError() bool { return e.HTTPStatus >= 400 && e.HTTPStatus < 500 }

// ServerError reports a 5xx answer.
func (e *APIError) ServerError() bool { return e.HTTPStatus >= 500 }

// IsCode reports whether err is an APIError with code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// UnreachableError means the server could not be reached or did not answer
// in time: a transport failure, not an answer.
type UnreachableError struct {
	URL     string
	Timeout bool
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("tracking server %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client talks to one tracking server.
type Client struct {
	base string // e.g. http://127.0.0.1:5000, no trailing slash
	hc   *http.Client
	// PageSize is max_results for the list walks; MLflow's own limits
	// apply (1000 for most searches).
	PageSize int
}

// DefaultPageSize is what a walk asks for per page unless told otherwise.
const DefaultPageSize = 1000

// New returns a client for the server at baseURL. hc may be nil.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, PageSize: DefaultPageSize}
}

func (c *Client) pageSize() int {
	if c.PageSize <= 0 {
		return DefaultPageSize
	}
	return c.PageSize
}

// get calls GET /api/2.0/mlflow/<endpoint>?query and decodes into out.
func (c *Client) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	u := c.base + "/api/2.0/mlflow/" + endpoint
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return c.do(ctx, http.MethodGet, endpoint, u, nil, out)
}

// send calls method /api/2.0/mlflow/<endpoint> with a JSON body.
func (c *Client) send(ctx context.Context, method, endpoint string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding MLflow %s request: %w", endpoint, err)
	}
	return c.do(ctx, method, endpoint, c.base+"/api/2.0/mlflow/"+endpoint, raw, out)
}

func (c *Client) do(ctx context.Context, method, endpoint, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("building MLflow %s request: %w", endpoint, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return &UnreachableError{URL: c.base, Timeout: isTimeout(ctx, err), Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return &UnreachableError{URL: c.base, Timeout: isTimeout(ctx, err), Err: fmt.Errorf("reading %s answer: %w", endpoint, err)}
	}
	if resp.StatusCode >= 300 {
		return decodeError(endpoint, resp.StatusCode, raw)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding MLflow %s answer: %w", endpoint, err)
	}
	return nil
}

func decodeError(endpoint string, status int, raw []byte) error {
	var e struct {
		Code    string `json:"error_code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) != nil || (e.Code == "" && e.Message == "") {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return &APIError{HTTPStatus: status, Message: msg, Endpoint: endpoint}
	}
	return &APIError{HTTPStatus: status, Code: e.Code, Message: e.Message, Endpoint: endpoint}
}

func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// walk calls page for each page token until the last page (MLflow omits
// next_page_token there).
func walk(ctx context.Context, page func(token string) (next string, err error)) error {
	token := ""
	for {
		next, err := page(token)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if next == token {
			return fmt.Errorf("MLflow returned the same page token twice")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		token = next
	}
}
