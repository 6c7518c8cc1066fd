package mlflowclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestErrorsAreDecoded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/2.0/mlflow/experiments/get":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No Experiment with id=9 exists"}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>proxy error</html>")
		}
	}))
	defer srv.Close()
	c := New(srv.URL, nil)

	_, err := c.GetExperiment(context.Background(), "9")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeNotFound || ae.Message != "No Experiment with id=9 exists" || ae.HTTPStatus != 404 {
		t.Fatalf("got %#v", err)
	}
	if !IsCode(err, CodeNotFound) || IsCode(err, CodeInvalidParameter) {
		t.Fatal("IsCode")
	}
	_, err = c.GetRun(context.Background(), "x")
	if !errors.As(err, &ae) || ae.Code != "" || ae.HTTPStatus != http.StatusBadGateway || !strings.Contains(ae.Message, "proxy error") {
		t.Fatalf("non-JSON error: %#v", err)
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = New("http://"+addr, nil).GetRun(context.Background(), "r")
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Timeout {
		t.Fatalf("closed port: %#v", err)
	}

	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	c := New(srv.URL, &http.Client{Timeout: 50 * time.Millisecond})
	_, err = c.GetRun(context.Background(), "r")
	if !errors.As(err, &ue) || !ue.Timeout {
		t.Fatalf("slow server: %#v", err)
	}
}

// Walks follow next_page_token until MLflow leaves it out, and send the
// page size and the token back.
func TestSearchRunsWalksPages(t *testing.T) {
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("runs/search: %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		bodies = append(bodies, in)
		switch in["page_token"] {
		case nil:
			io.WriteString(w, `{"runs": [{"info": {"run_id": "a", "experiment_id": "1"}}, {"info": {"run_id": "b"}}], "next_page_token": "t1"}`)
		case "t1":
			io.WriteString(w, `{"runs": [{"info": {"run_id": "c"}, "data": {"metrics": [{"key": "m", "value": "NaN", "step": 1}]}}], "next_page_token": "t2"}`)
		default:
			io.WriteString(w, `{}`) // MLflow's empty last page
		}
	}))
	defer srv.Close()
	c := New(srv.URL, nil)
	c.PageSize = 2
	runs, err := c.SearchRuns(context.Background(), RunSearch{ExperimentIDs: []string{"1"}, Filter: "metrics.m > 1", OrderBy: []string{"start_time DESC"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || runs[2].Info.RunID != "c" || !math.IsNaN(runs[2].Data.Metrics[0].Value) {
		t.Fatalf("runs %+v", runs)
	}
	if len(bodies) != 3 || bodies[0]["max_results"] != float64(2) || bodies[0]["filter"] != "metrics.m > 1" || bodies[2]["page_token"] != "t2" {
		t.Fatalf("requests %v", bodies)
	}
}

func TestSearchRunsChunksExperiments(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			IDs []string `json:"experiment_ids"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		calls++
		if len(in.IDs) > MaxSearchExperiments {
			t.Errorf("%d experiment ids in one search", len(in.IDs))
		}
		io.WriteString(w, `{"runs": [{"info": {"run_id": "`+in.IDs[0]+`"}}]}`)
	}))
	defer srv.Close()
	ids := make([]string, MaxSearchExperiments+1)
	for i := range ids {
		ids[i] = strings.Repeat("x", i%3+1)
	}
	runs, err := New(srv.URL, nil).SearchRuns(context.Background(), RunSearch{ExperimentIDs: ids})
	if err != nil || calls != 2 || len(runs) != 2 {
		t.Fatalf("calls %d, runs %d, err %v", calls, len(runs), err)
	}
}

func TestWalkRejectsARepeatedToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"experiments": [], "next_page_token": "same"}`)
	}))
	defer srv.Close()
	if _, err := New(srv.URL, nil).SearchExperiments(context.Background(), ViewActive, ""); err == nil {
		t.Fatal("a server repeating its page token would loop forever")
	}
}

func TestMetricJSON(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{{`1.5`, 1.5}, {`"NaN"`, math.NaN()}, {`"Infinity"`, math.Inf(1)}, {`"-Infinity"`, math.Inf(-1)}, {`"2.5"`, 2.5}} {
		var m Metric
		if err := json.Unmarshal([]byte(`{"key": "k", "value": `+c.in+`, "timestamp": 3, "step": 4}`), &m); err != nil {
			t.Fatal(err)
		}
		if m.Key != "k" || m.Timestamp != 3 || m.Step != 4 || !(m.Value == c.want || math.IsNaN(m.Value) && math.IsNaN(c.want)) {
			t.Fatalf("%s: %+v", c.in, m)
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%s: marshal: %v", c.in, err)
		}
		var back Metric
		if err := json.Unmarshal(out, &back); err != nil || !(back.Value == m.Value || math.IsNaN(back.Value) && math.IsNaN(m.Value)) {
			t.Fatalf("%s: round trip %s: %v", c.in, out, err)
		}
	}
}

func TestDeleteSendsAJSONBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodDelete || r.URL.Path != "/api/2.0/mlflow/registered-models/alias" || string(b) != `{"alias":"champion","name":"m"}` {
			t.Errorf("%s %s %s", r.Method, r.URL.Path, b)
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	if err := New(srv.URL+"/", nil).DeleteAlias(context.Background(), "m", "champion"); err != nil {
		t.Fatal(err)
	}
}

func TestArtifactURLEscapes(t *testing.T) {
	got := New("http://h:1/", nil).ArtifactURL("r1", "dir/a b&c.txt")
	if got != "http://h:1/get-artifact?path=dir%2Fa+b%26c.txt&run_uuid=r1" {
		t.Fatal(got)
	}
}
