package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
)

func TestAdaptPredictBody(t *testing.T) {
	cols := []string{"a", "b"}
	for name, tc := range map[string]struct {
		body, ct string
		cols     []string
		want     string // expected JSON, or the body itself when passed through
		wantCT   string
	}{
		"split passes through":  {`{"dataframe_split": {"data": [[1, 2]]}}`, "application/json", cols, `{"dataframe_split": {"data": [[1, 2]]}}`, "application/json"},
		"inputs passes through": {` {"inputs": [[1, 2]]}`, "application/json; charset=utf-8", cols, ` {"inputs": [[1, 2]]}`, "application/json"},
		"csv passes through":    {"a,b\n1,2\n", "text/csv", cols, "a,b\n1,2\n", "text/csv"},
		"data with columns":     {`{"data": [[1, 2]]}`, "application/json", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"data without columns":  {`{"data": [[1, 2]]}`, "", nil, `{"inputs": [[1, 2]]}`, "application/json"},
		"data as records":       {`{"data": [{"b": 2, "a": 1, "extra": 3}]}`, "application/json", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"records, no signature": {`{"data": [{"a": 1, "b": 2}]}`, "application/json", nil, `{"dataframe_records": [{"a": 1, "b": 2}]}`, "application/json"},
		// The original's tests and swagger example: pandas orient table,
		// as a JSON document or a string holding one, in JSON or a form.
		"table orient":           {`{"data": {"schema": {"fields": [{"name": "index"}, {"name": "a"}, {"name": "b"}], "primaryKey": ["index"]}, "data": [{"index": 0, "a": 1, "b": 2}]}}`, "application/json", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"table orient string":    {`{"data": "{\"schema\": {\"primaryKey\": [\"index\"]}, \"data\": [{\"index\": 0, \"b\": 2, \"a\": 1}]}"}`, "application/json", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"table orient form":      {`data=` + url.QueryEscape(`{"schema": {"primaryKey": ["idx"]}, "data": [{"idx": 7, "a": 1, "b": 2}]}`), "application/x-www-form-urlencoded", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"split orient":           {`{"data": "{\"columns\": [\"b\", \"a\"], \"index\": [0], \"data\": [[2, 1]]}"}`, "application/json", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"records orient form":    {`data=` + url.QueryEscape(`[{"a": 1, "b": 2}]`), "application/x-www-form-urlencoded", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"data first, then split": {`{"data": 1, "dataframe_split": {"data": [[1, 2]]}}`, "application/json", cols, `{"data": 1, "dataframe_split": {"data": [[1, 2]]}}`, "application/json"},
		"form data":              {`data=[[1,2]]`, "application/x-www-form-urlencoded", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
		"JSON sent as a form":    {`{"data": [[1, 2]]}`, "application/x-www-form-urlencoded", cols, `{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}`, "application/json"},
	} {
		t.Run(name, func(t *testing.T) {
			r, ct, _, err := adaptPredictBody(strings.NewReader(tc.body), tc.ct, tc.cols)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if ct != tc.wantCT && !strings.HasPrefix(tc.ct, tc.wantCT) {
				t.Errorf("content type %q, want %q", ct, tc.wantCT)
			}
			if !jsonEqual(got, []byte(tc.want)) && string(got) != tc.want {
				t.Errorf("body %s, want %s", got, tc.want)
			}
		})
	}
	for name, body := range map[string]string{
		"data not rows":  `{"data": "x"}`,
		"data empty":     `{"data": []}`,
		"broken json":    `{"data": [[1, 2]`,
		"column missing": `{"data": [{"a": 1}]}`,
		"split ragged":   `{"data": {"columns": ["a", "b"], "data": [[1]]}}`,
		"table no rows":  `{"data": {"schema": {}, "data": []}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := adaptPredictBody(strings.NewReader(body), "application/json", cols)
			if events.StatusOf(err) != http.StatusBadRequest {
				t.Fatalf("error %v, want a 400", err)
			}
		})
	}
}

func TestLimitedBody(t *testing.T) {
	l := &limitedBody{r: strings.NewReader("12345"), left: 5}
	if b, err := io.ReadAll(l); err != nil || string(b) != "12345" || l.over {
		t.Fatalf("exactly the limit: %q %v over=%v", b, err, l.over)
	}
	l = &limitedBody{r: strings.NewReader("123456"), left: 5}
	if _, err := io.ReadAll(l); err == nil || !l.over {
		t.Fatalf("over the limit: err %v over=%v", err, l.over)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
