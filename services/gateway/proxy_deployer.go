package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	deployer "github.com/mlpanel/mlpanel/services/deployer/client"
)

// DefaultPredictMaxBytes bounds one predict body when Config leaves
// PredictMaxBytes zero (MLPANEL_PREDICT_MAX_BYTES's default is the same).
const DefaultPredictMaxBytes = 32 << 20

// VersionHeader names the model version whose server answered a predict:
// during a rollover some answers come from the old version, some from the
// new, and each says which.
const VersionHeader = "Mlpanel-Model-Version"

// predictProxy streams predict calls straight to the deployment's model
// server (/invocations). It learns endpoints from the deployer over NATS
// and keeps them fresh from the deployment events.
type predictProxy struct {
	g       *Gateway
	max     int64
	client  *http.Client
	mu      sync.Mutex
	cache   map[string]deployEndpoint
	watched bool
	// wakeTimeout bounds a prediction held while its deployment wakes.
	wakeTimeout time.Duration
}

// deployEndpoint is the part of a deployment the proxy needs.
type deployEndpoint struct {
	ID           string   `json:"id"`
	Status       string   `json:"status"`
	DesiredState string   `json:"desired_state"`
	URL          string   `json:"url"`
	Version      string   `json:"version"`
	InputColumns []string `json:"input_columns"`
	deleted      bool
}

func newPredictProxy(g *Gateway) *predictProxy {
	max := g.cfg.PredictMaxBytes
	if max <= 0 { // a Config built in code, not by ConfigFromEnv
		max = DefaultPredictMaxBytes
	}
	p := &predictProxy{g: g, max: max, cache: map[string]deployEndpoint{}, wakeTimeout: g.cfg.deployWakeTimeout(),
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 5 * time.Minute, // a big batch may take long
		}}}
	p.watch()
	return p
}

// watch keeps the cache in step with deployment events. They are plain
// NATS messages too, so a core subscription sees them without a consumer.
// If it cannot subscribe, every predict asks the deployer.
func (p *predictProxy) watch() {
	if p.g.nc == nil {
		return // a gateway built without NATS (route tests)
	}
	_, err := p.g.nc.Subscribe(events.SubjectPrefix+".deployment.>", func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil {
			return
		}
		var ep deployEndpoint
		if json.Unmarshal(ev.Data, &ep) != nil || ep.ID == "" {
			return
		}
		// A deletion hides the deployment at once, while its server stops.
		ep.deleted = ep.Status == "deleted" || ep.DesiredState == "deleted"
		p.mu.Lock()
		p.cache[ep.ID] = ep
		p.mu.Unlock()
	})
	if err != nil {
		p.g.log.Warn("not following deployment events; predict asks the deployer every time", "err", err)
		return
	}
	p.watched = true
}

func (p *predictProxy) forget(id string) {
	p.mu.Lock()
	delete(p.cache, id)
	p.mu.Unlock()
}

// endpoint is the deployment's endpoint, from the cache or the deployer.
func (p *predictProxy) endpoint(ctx context.Context, id string) (deployEndpoint, error) {
	p.mu.Lock()
	ep, ok := p.cache[id]
	p.mu.Unlock()
	if ok && p.watched {
		if ep.deleted {
			return ep, events.Errorf(http.StatusNotFound, "deployment %q not found: list deployments with GET /deployments", id)
		}
		return ep, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := deployer.New(p.g.nc).Get(ctx, id)
	if err != nil {
		return ep, err
	}
	ep = endpointOf(d)
	p.mu.Lock()
	p.cache[id] = ep
	p.mu.Unlock()
	return ep, nil
}

// endpointOf is the part of deployment d the proxy keeps.
func endpointOf(d deployer.Deployment) deployEndpoint {
	return deployEndpoint{ID: d.ID, Status: string(d.Status), DesiredState: string(d.DesiredState), URL: d.URL, InputColumns: d.InputColumns, Version: d.Version}
}

func (p *predictProxy) handle(c *gin.Context) {
	id := c.Param("id")
	ep, err := p.endpoint(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	defer p.g.deployActivity.Begin(id)()
	if ep.Status == "sleeping" {
		if ep, err = p.wakeDeployment(c.Request.Context(), id); err != nil {
			writeError(c, err)
			return
		}
	}
	if ep.Status != "running" || ep.URL == "" {
		writeError(c, events.Errorf(http.StatusConflict,
			"deployment %s is %s, not running: start it with PUT /deployments/%s/run", id, ep.Status, id))
		return
	}
	if c.Request.ContentLength > p.max {
		writeError(c, tooLarge(p.max))
		return
	}
	lim := &limitedBody{r: c.Request.Body, left: p.max}
	body, ct, original, err := adaptPredictBody(lim, c.GetHeader("Content-Type"), ep.InputColumns)
	if err != nil {
		if lim.over {
			err = tooLarge(p.max)
		}
		writeError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Minute)
	defer cancel()
	sent := &countingBody{r: body}
	resp, err := p.send(ctx, ep.URL, sent, ct)
	if err != nil && sent.n == 0 && ctx.Err() == nil {
		// Refused before a byte went (a server stopped after a rollover
		// whose event this gateway has not seen yet, a missed event): the
		// deployer knows where it serves now, and nothing was sent twice.
		p.forget(id)
		if fresh, ferr := p.endpoint(c.Request.Context(), id); ferr == nil && fresh.Status == "running" && fresh.URL != ep.URL {
			ep = fresh
			resp, err = p.send(ctx, ep.URL, sent, ct)
		}
	}
	if err != nil {
		if lim.over {
			writeError(c, tooLarge(p.max))
			return
		}
		// The cached endpoint may be stale (a missed event): ask again.
		p.forget(id)
		if fresh, ferr := p.endpoint(c.Request.Context(), id); ferr == nil && fresh.Status != "running" {
			writeError(c, events.Errorf(http.StatusConflict, "deployment %s is %s, not running: start it with PUT /deployments/%s/run", id, fresh.Status, id))
			return
		}
		writeError(c, events.Errorf(http.StatusBadGateway, "the model server of deployment %s did not answer: %v", id, err))
		return
	}
	if ep.Version != "" {
		c.Header(VersionHeader, ep.Version)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		writeError(c, modelServerError(resp))
		return
	}
	if original {
		p.answerOriginal(c, resp)
		return
	}
	c.Status(resp.StatusCode)
	if v := resp.Header.Get("Content-Type"); v != "" {
		c.Header("Content-Type", v)
	}
	if _, err := io.Copy(c.Writer, resp.Body); err != nil {
		p.g.log.Warn("streaming a prediction", "deployment", id, "err", err)
	}
}

// send posts one predict to a model server.
func (p *predictProxy) send(ctx context.Context, base string, body io.Reader, ct string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/invocations", io.NopCloser(body))
	if err != nil {
		return nil, fmt.Errorf("building predict request: %w", err)
	}
	req.Header.Set("Content-Type", ct)
	return p.client.Do(req)
}

// countingBody counts what the transport read of a predict body; a body
// not read at all can be sent again elsewhere. Close is a no-op (the
// NopCloser in send) so a refused attempt leaves it readable.
type countingBody struct {
	r io.Reader
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// maxOriginalAnswer bounds a model answer read whole to be re-shaped.
const maxOriginalAnswer = 64 << 20

// answerOriginal answers a caller of the original's format as both kinds
// of client read it: MLflow's "predictions" and the original's
// "prediction", the model server's answer as text.
func (p *predictProxy) answerOriginal(c *gin.Context, resp *http.Response) {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxOriginalAnswer+1))
	if err != nil {
		writeError(c, events.Errorf(http.StatusBadGateway, "reading the model server's answer: %v", err))
		return
	}
	if len(raw) > maxOriginalAnswer {
		writeError(c, events.Errorf(http.StatusBadGateway,
			"the prediction is larger than %d bytes: send smaller batches, or MLflow's own format (dataframe_split), which is streamed", maxOriginalAnswer))
		return
	}
	var out struct {
		Predictions json.RawMessage `json:"predictions"`
	}
	if json.Unmarshal(raw, &out) != nil || len(out.Predictions) == 0 {
		out.Predictions = raw
		if !json.Valid(raw) {
			out.Predictions, _ = json.Marshal(string(raw))
		}
	}
	c.JSON(resp.StatusCode, gin.H{"predictions": out.Predictions, "prediction": string(raw)})
}

func tooLarge(max int64) error {
	return events.Errorf(http.StatusRequestEntityTooLarge,
		"predict body larger than %d bytes (MLPANEL_PREDICT_MAX_BYTES): send smaller batches", max)
}

// modelServerError turns MLflow's {"error_code", "message"} into ours,
// keeping the status for a client error.
func modelServerError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var me struct {
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &me) == nil && me.Message != "" {
		msg = me.Message
	}
	if resp.StatusCode < 500 {
		return events.Errorf(resp.StatusCode, "the model rejected the input: %s", msg)
	}
	return events.Errorf(http.StatusBadGateway, "the model server failed (HTTP %d): %s", resp.StatusCode, msg)
}

// limitedBody reads at most left bytes and remembers when there were more.
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
}

var errTooLarge = errors.New("predict body too large")

func (l *limitedBody) Read(b []byte) (int, error) {
	if l.left <= 0 {
		// One more byte tells a body of exactly the limit from a larger one.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(b)) > l.left {
		b = b[:l.left]
	}
	n, err := l.r.Read(b)
	l.left -= int64(n)
	return n, err
}

// mlflowKeys are the top-level keys /invocations accepts.
var mlflowKeys = map[string]bool{"dataframe_split": true, "dataframe_records": true, "instances": true, "inputs": true}

// adaptPredictBody passes MLflow's own formats through as a stream and
// converts the original mlpanel's {"data": rows} (JSON or a form field)
// into a format MLflow accepts.
func adaptPredictBody(r io.Reader, contentType string, columns []string) (io.Reader, string, bool, error) {
	body, ct, err := adaptBody(r, contentType, columns)
	converted := err == nil && ct == "application/json" && isConverted(body)
	return body, ct, converted, err
}

// converted marks a body the gateway built from the original's format.
type converted struct{ *bytes.Reader }

func isConverted(r io.Reader) bool { _, ok := r.(converted); return ok }

func adaptBody(r io.Reader, contentType string, columns []string) (io.Reader, string, error) {
	ct, _, _ := mime.ParseMediaType(contentType)
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(4096)
	if ct == "application/x-www-form-urlencoded" && bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte("{")) {
		ct = "application/json" // curl -d sends JSON as a form unless told otherwise
	}
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		raw, err := io.ReadAll(br)
		if err != nil {
			return nil, "", events.Errorf(http.StatusBadRequest, "reading predict body: %v", err)
		}
		data, err := formData(raw, contentType)
		if err != nil {
			return nil, "", err
		}
		return convertData(data, columns)
	case "", "application/json":
	default:
		return br, contentType, nil // text/csv and the like go as they are
	}
	if firstKey(head) != "data" {
		return br, "application/json", nil
	}
	raw, err := io.ReadAll(br)
	if err != nil {
		return nil, "", events.Errorf(http.StatusBadRequest, "reading predict body: %v", err)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, "", events.Errorf(http.StatusBadRequest, "malformed JSON predict body: %v", err)
	}
	for k := range body {
		if mlflowKeys[k] {
			return bytes.NewReader(raw), "application/json", nil // MLflow's own format after all
		}
	}
	return convertData(body["data"], columns)
}

// firstKey is the first key of a JSON object, read from its first bytes.
func firstKey(head []byte) string {
	t := bytes.TrimLeft(head, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return ""
	}
	t = bytes.TrimLeft(t[1:], " \t\r\n")
	if len(t) == 0 || t[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(t[1:], '"')
	if end < 0 {
		return ""
	}
	return string(t[1 : 1+end])
}

func formData(raw []byte, contentType string) (json.RawMessage, error) {
	var v string
	if strings.HasPrefix(contentType, "multipart/") {
		req, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(raw))
		req.Header.Set("Content-Type", contentType)
		if err := req.ParseMultipartForm(int64(len(raw)) + 1024); err != nil {
			return nil, events.Errorf(http.StatusBadRequest, "malformed multipart predict body: %v", err)
		}
		v = req.FormValue("data")
	} else {
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, events.Errorf(http.StatusBadRequest, "malformed form predict body: %v", err)
		}
		v = vals.Get("data")
	}
	if v == "" {
		return nil, events.Errorf(http.StatusBadRequest, `a form predict body needs a "data" field holding a JSON list of rows`)
	}
	return json.RawMessage(v), nil
}

// convertData turns the original mlpanel's "data" into MLflow's input.
// data may be a list of rows, or a pandas JSON document (orient table,
// split or records), itself or as a string holding it, as the original's
// clients sent it. Named columns are mapped to the model's signature.
func convertData(data json.RawMessage, columns []string) (io.Reader, string, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var doc string
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, "", badData()
		}
		data = bytes.TrimSpace([]byte(doc))
	}
	if len(data) > 0 && data[0] == '{' {
		return convertDocument(data, columns)
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(data, &rows); err != nil || len(rows) == 0 {
		return nil, "", badData()
	}
	first := bytes.TrimSpace(rows[0])
	switch {
	case len(first) > 0 && first[0] == '{':
		return recordsInput(rows, nil, columns)
	case len(first) > 0 && first[0] == '[' && len(columns) > 0:
		return encodeInput(map[string]any{"dataframe_split": map[string]any{"columns": columns, "data": data}})
	}
	return encodeInput(map[string]any{"inputs": data})
}

func badData() error {
	return events.Errorf(http.StatusBadRequest,
		`"data" must be a non-empty JSON list of rows, e.g. {"data": [[1.0, 2.0]]}, or a pandas JSON document (orient table, split or records); or send one of MLflow's formats (dataframe_split, dataframe_records, instances, inputs)`)
}

// convertDocument reads a pandas JSON document: orient table
// ({"schema": {...}, "data": [{"index": 0, "col": v}, ...]}) or split
// ({"columns": [...], "index": [...], "data": [[...]]}).
func convertDocument(raw []byte, columns []string) (io.Reader, string, error) {
	var doc struct {
		Schema *struct {
			PrimaryKey []string `json:"primaryKey"`
		} `json:"schema"`
		Columns []string          `json:"columns"`
		Data    []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Data) == 0 {
		return nil, "", badData()
	}
	switch {
	case doc.Schema != nil:
		index := doc.Schema.PrimaryKey
		if index == nil {
			index = []string{"index"} // pandas' name for an unnamed index
		}
		return recordsInput(doc.Data, index, columns)
	case len(doc.Columns) > 0:
		rows := make([]json.RawMessage, len(doc.Data))
		for i, r := range doc.Data {
			var vals []json.RawMessage
			if err := json.Unmarshal(r, &vals); err != nil || len(vals) != len(doc.Columns) {
				return nil, "", events.Errorf(http.StatusBadRequest,
					"row %d of the split document has %d values for %d columns", i, len(vals), len(doc.Columns))
			}
			rec := make(map[string]json.RawMessage, len(vals))
			for j, c := range doc.Columns {
				rec[c] = vals[j]
			}
			rows[i], _ = json.Marshal(rec)
		}
		return recordsInput(rows, nil, columns)
	}
	return nil, "", badData()
}

// recordsInput maps rows of named values to the model's input columns, in
// the signature's order, leaving out the index and any column the model
// does not take. Without a signature the rows go as dataframe records.
func recordsInput(rows []json.RawMessage, index, columns []string) (io.Reader, string, error) {
	recs := make([]map[string]json.RawMessage, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r, &recs[i]); err != nil {
			return nil, "", events.Errorf(http.StatusBadRequest, "row %d is not an object of column values", i)
		}
		for _, k := range index {
			delete(recs[i], k)
		}
	}
	if len(columns) == 0 {
		return encodeInput(map[string]any{"dataframe_records": recs})
	}
	out := make([][]json.RawMessage, len(recs))
	for i, rec := range recs {
		out[i] = make([]json.RawMessage, len(columns))
		for j, c := range columns {
			v, ok := rec[c]
			if !ok {
				return nil, "", events.Errorf(http.StatusBadRequest,
					"row %d has no column %q: the model takes %s", i, c, strings.Join(columns, ", "))
			}
			out[i][j] = v
		}
	}
	return encodeInput(map[string]any{"dataframe_split": map[string]any{"columns": columns, "data": out}})
}

func encodeInput(v any) (io.Reader, string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("encoding predict body: %w", err)
	}
	return converted{bytes.NewReader(b)}, "application/json", nil
}
