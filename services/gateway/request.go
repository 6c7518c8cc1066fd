package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// buildRequest turns an HTTP request into the control-plane envelope.
// JSON, url-encoded and multipart bodies are all accepted, as the original
// mlpanel's clients sent forms.
func buildRequest(c *gin.Context, maxBody int64) (events.Request, error) {
	r := events.Request{Path: map[string]string{}, Query: map[string]string{}}
	for _, p := range c.Params {
		r.Path[p.Key] = p.Value
	}
	for k, v := range c.Request.URL.Query() {
		if len(v) > 0 && !strings.HasPrefix(k, "_") {
			r.Query[k] = v[0]
		}
	}
	lp, err := listParams(c)
	if err != nil {
		return r, err
	}
	r.List = lp
	if u, ok := c.Get(userKey); ok {
		cr := callerRequest(u.(access.User))
		r.Caller, r.CallerID, r.CallerSince = cr.Caller, cr.CallerID, cr.CallerSince
	}
	if v, ok := c.Get(visibleKey); ok {
		r.Restricted, r.Visible = true, v.([]string)
	}

	if c.Request.Body == nil || c.Request.ContentLength == 0 {
		return r, nil
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if ct == "multipart/form-data" {
		if err := c.Request.ParseMultipartForm(maxBody); err != nil {
			return r, bodyErr(err, maxBody)
		}
		r.Body, err = formJSON(c.Request.MultipartForm.Value, formFields(c.Request.Method, c.FullPath(), ct))
		return r, err
	}
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return r, bodyErr(err, maxBody)
	}
	t := bytes.TrimSpace(b)
	switch {
	case len(t) == 0:
		return r, nil
	// curl -d sends JSON as a form unless told otherwise; a body that
	// opens with '{' is JSON whatever the header says.
	case ct == "application/x-www-form-urlencoded" && t[0] != '{':
		vals, err := url.ParseQuery(string(t))
		if err != nil {
			return r, events.Errorf(http.StatusBadRequest, "malformed form body: %v", err)
		}
		if r.Body, err = formJSON(vals, formFields(c.Request.Method, c.FullPath(), ct)); err != nil {
			return r, err
		}
	case t[0] != '{':
		return r, events.Errorf(http.StatusBadRequest, "the body must be a JSON object (or a form with Content-Type application/x-www-form-urlencoded)")
	case !json.Valid(t):
		return r, events.Errorf(http.StatusBadRequest, "malformed JSON body: check quotes, commas and braces")
	default:
		if at := nullAt(t); at != "" {
			return r, events.Errorf(http.StatusBadRequest, "body field %s is null: leave it out or give a value (the OpenAPI document allows null nowhere)", at)
		}
		r.Body = t
	}
	return r, nil
}

func bodyErr(err error, maxBody int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return events.Errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes: send less", maxBody)
	}
	return events.Errorf(http.StatusBadRequest, "reading request body: %v", err)
}

// listParams reads _start, _end, _sort and _order.
func listParams(c *gin.Context) (events.ListParams, error) {
	var lp events.ListParams
	for _, f := range []struct {
		name string
		dst  *int
	}{{"_start", &lp.Start}, {"_end", &lp.End}} {
		if vs := c.QueryArray(f.name); len(vs) > 1 {
			return lp, events.Errorf(http.StatusBadRequest, "%s is given %d times: give it once", f.name, len(vs))
		}
		v := c.Query(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return lp, events.Errorf(http.StatusBadRequest, "%s=%q: want a whole number >= 0", f.name, v)
		}
		*f.dst = n
	}
	if lp.End > 0 && lp.End < lp.Start {
		return lp, events.Errorf(http.StatusBadRequest, "_end (%d) is before _start (%d)", lp.End, lp.Start)
	}
	lp.Sort = c.Query("_sort")
	lp.Order = strings.ToUpper(c.Query("_order"))
	if lp.Order != "" && lp.Order != "ASC" && lp.Order != "DESC" {
		return lp, events.Errorf(http.StatusBadRequest, "_order=%q: want ASC or DESC", c.Query("_order"))
	}
	return lp, nil
}

// writeError answers {"code": "<status>", "message": ...}.
func writeError(c *gin.Context, err error) {
	status := events.StatusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = fmt.Sprintf("internal error: %v", err)
	}
	body := gin.H{"code": strconv.Itoa(status), "message": msg}
	if c.FullPath() == mlflowRoute {
		// MLflow clients read error_code; without it they report INTERNAL_ERROR.
		body["error_code"] = mlflowErrorCode(status)
	}
	c.AbortWithStatusJSON(status, body)
}

func mlflowErrorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "RESOURCE_DOES_NOT_EXIST"
	case http.StatusBadRequest:
		return "INVALID_PARAMETER_VALUE"
	case http.StatusConflict:
		return "INVALID_STATE"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "TEMPORARILY_UNAVAILABLE"
	}
	return "INTERNAL_ERROR"
}

// nullAt is the path of the first null in a JSON document, "" if none.
// Go decodes null into a zero value, so a null status or name would pass
// as "" and mean "leave as is" or "any"; the document declares no field
// nullable, so every null is refused before a service sees it.
func nullAt(doc []byte) string {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return ""
	}
	return findNull(v, "")
}

func findNull(v any, at string) string {
	switch x := v.(type) {
	case nil:
		if at == "" {
			return "(the whole body)"
		}
		return at
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p := findNull(x[k], joinField(at, k)); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range x {
			if p := findNull(e, fmt.Sprintf("%s[%d]", at, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

func joinField(at, k string) string {
	if at == "" {
		return strconv.Quote(k)
	}
	return at + "." + strconv.Quote(k)
}
