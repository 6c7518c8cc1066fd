package mlmodel

import (
	"encoding/json"
	"reflect"
	"testing"
)

// MLmodel as MLflow writes it: PyYAML wraps the long JSON of the
// signature over several lines.
const mlmodel = `artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
mlflow_version: 3.17.2
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type":
    "double", "name": "sepal width (cm)", "required": true}, {"type": "double", "name":
    "petal length (cm)", "required": true}, {"type": "double", "name": "petal width
    (cm)", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
`

func TestInputColumns(t *testing.T) {
	cols, err := InputColumns([]byte(mlmodel))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"}
	if !reflect.DeepEqual(cols, want) {
		t.Fatalf("columns %q, want %q", cols, want)
	}
	for name, doc := range map[string]string{
		"no signature": "flavors: {}\n",
		"tensor":       "signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float64\", \"shape\": [-1, 4]}}]'\n",
	} {
		if cols, err := InputColumns([]byte(doc)); err != nil || cols != nil {
			t.Errorf("%s: columns %v, err %v; want none", name, cols, err)
		}
	}
}

// The event carries the signature as MLflow wrote it: inputs and outputs
// as JSON (not the strings MLmodel holds them in), no params when null,
// nothing at all for a model without a signature.
func TestParseSignature(t *testing.T) {
	s, err := ParseSignature([]byte(mlmodel))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Inputs  []struct{ Name, Type string }
		Outputs []struct{ Type string }
		Params  any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if len(got.Inputs) != 4 || got.Inputs[3].Name != "petal width (cm)" || got.Inputs[3].Type != "double" {
		t.Errorf("inputs %+v", got.Inputs)
	}
	if len(got.Outputs) != 1 || got.Outputs[0].Type != "long" || got.Params != nil {
		t.Errorf("outputs %+v params %v in %s", got.Outputs, got.Params, out)
	}
	if s, err := ParseSignature([]byte("flavors: {}\n")); err != nil || s != nil {
		t.Errorf("no signature: %+v, %v; want nil", s, err)
	}
	withParams := "signature:\n  inputs: '[{\"type\": \"string\", \"name\": \"q\"}]'\n  params: '[{\"name\": \"k\", \"type\": \"long\", \"default\": 3, \"shape\": null}]'\n"
	if s, err := ParseSignature([]byte(withParams)); err != nil || s == nil || !json.Valid(s.Params) || s.Outputs != nil {
		t.Errorf("params: %+v, %v", s, err)
	}
	if _, err := ParseSignature([]byte("signature:\n  inputs: '[{broken'\n")); err == nil {
		t.Error("a signature that is not JSON parsed")
	}
}
