package gateway

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	dapp "github.com/mlpanel/mlpanel/services/deployer/app"
	ddomain "github.com/mlpanel/mlpanel/services/deployer/domain"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
	tapp "github.com/mlpanel/mlpanel/services/tracking/app"
	tdomain "github.com/mlpanel/mlpanel/services/tracking/domain"
)

// jsonFields are the JSON names of a struct's fields, each with whether
// it is always present (no omitempty).
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" { // encoding/json inlines an embedded struct
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = !strings.Contains(opts, "omitempty")
	}
	return out
}

// The projects schemas and the Go types the projects service answers
// with have the same fields, and the same ones are always present: code
// and document cannot drift apart unnoticed.
func TestProjectSchemasMatchTheCode(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		schema   string
		v        any
		response bool // the answer: required = always present
	}{
		{"Project", app.Described{}, true}, // GET /projects/{id}; lists answer domain.Project, the same without the omitempty extras
		{"ProjectHealth", app.Health{}, true},
		{"ProjectLogs", app.Logs{}, true},
		{"ProjectCreate", app.CreateInput{}, false},
		{"ProjectUpdate", app.UpdateInput{}, false},
		{"ProjectImportMembers", membersReport{}, true}, // the gateway's part of an import's answer
	} {
		checkSchema(t, doc, c.schema, c.v, c.response)
	}

	// A real project, as the service encodes it, validates.
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	p := domain.Project{ID: "3", Seq: 3, Name: "churn", Description: "d", Status: domain.StatusRunning,
		DesiredState: domain.DesiredRunning, Port: 5002, MlflowURI: "http://127.0.0.1:5002",
		InternalURL: "http://127.0.0.1:5002", Path: "/data/projects/3", CreatedBy: "ana",
		CreatedAt: now, UpdatedAt: now, LastError: "", RestartCount: 1, Pid: 4242, PidStart: 99}
	raw, _ := json.Marshal(p)
	var v any
	_ = json.Unmarshal(raw, &v)
	if err := doc.Components.Schemas["Project"].Value.VisitJSON(v); err != nil {
		t.Errorf("a real project does not match the schema: %v", err)
	}
	// Every status and desired state the code knows is in the enums.
	statuses := []domain.Status{domain.StatusTerminated, domain.StatusStarting, domain.StatusRunning, domain.StatusUnhealthy, domain.StatusFailed, domain.StatusArchived, domain.StatusSleeping}
	var enum []string
	for _, e := range doc.Components.Schemas["ProjectStatus"].Value.Enum {
		enum = append(enum, e.(string))
	}
	var code []string
	for _, s := range statuses {
		code = append(code, string(s))
	}
	sort.Strings(enum)
	sort.Strings(code)
	if !slices.Equal(enum, code) {
		t.Errorf("ProjectStatus enum %v, code %v", enum, code)
	}
	// The name rule is the same rule.
	pattern := doc.Components.Schemas["ProjectName"].Value.Pattern
	for _, name := range []string{"churn", "a", "9lives", "has space", strings.Repeat("a", 63), strings.Repeat("a", 64), "x.y-z_1"} {
		codeOK := domain.ValidateName(name) == nil
		specOK := doc.Components.Schemas["ProjectName"].Value.VisitJSON(name) == nil
		if codeOK != specOK {
			t.Errorf("name %q: code says %v, schema (%s) says %v", name, codeOK, pattern, specOK)
		}
	}
}

// checkSchema: schema and v have the same fields (besides extra, which
// the gateway adds to the service's answer), and for an answer the
// always-present ones are the required ones.
func checkSchema(t *testing.T, doc *openapi3.T, schema string, v any, response bool, extra ...string) {
	t.Helper()
	ref := doc.Components.Schemas[schema]
	if ref == nil || ref.Value == nil {
		t.Errorf("no schema %s", schema)
		return
	}
	s := ref.Value
	fields := jsonFields(reflect.TypeOf(v))
	var props []string
	for p := range s.Properties {
		props = append(props, p)
		if _, ok := fields[p]; !ok && !slices.Contains(extra, p) {
			t.Errorf("schema %s has %q, which %T does not", schema, p, v)
		}
	}
	for f, always := range fields {
		if !slices.Contains(props, f) {
			t.Errorf("%T has %q, which schema %s does not", v, f, schema)
		}
		if response && always != slices.Contains(s.Required, f) {
			t.Errorf("%s.%s: always present in %T is %v, required in the schema is %v", schema, f, v, always, !always)
		}
	}
}

// The tracking and deployer schemas and the Go types those services
// encode their answers from (and decode their inputs into) have the same
// fields; the original mlpanel's id keys are the gateway's additions.
func TestTrackingAndDeployerSchemasMatchTheCode(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		schema   string
		v        any
		response bool
		extra    []string
	}{
		{"Experiment", tdomain.Experiment{}, true, []string{"experiment_id"}},
		{"ExperimentInput", tapp.ExperimentInput{}, false, nil},
		{"Run", tdomain.Run{}, true, []string{"run_id"}},
		{"Artifact", tdomain.Artifact{}, true, nil},
		{"RegisteredModel", tdomain.RegisteredModel{}, true, []string{"model_id"}},
		{"RegisteredModelInput", tapp.ModelInput{}, false, nil},
		{"ModelVersion", tdomain.ModelVersion{}, true, nil},
		{"Deployment", ddomain.Deployment{}, true, []string{"deployment_id", "min_awake"}}, // min_awake: MarshalJSON's, from the idle rule
		{"DeploymentCreate", dapp.CreateInput{}, false, nil},
		{"DeploymentHealth", dapp.Health{}, true, nil},
	} {
		checkSchema(t, doc, c.schema, c.v, c.response, c.extra...)
	}
}
