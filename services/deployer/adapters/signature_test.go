package adapters

import (
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

func TestSignatureColumns(t *testing.T) {
	cols, err := signatureColumns([]byte(mlmodel))
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
		if cols, err := signatureColumns([]byte(doc)); err != nil || cols != nil {
			t.Errorf("%s: columns %v, err %v; want none", name, cols, err)
		}
	}
}
