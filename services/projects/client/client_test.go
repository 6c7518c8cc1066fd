package client

import (
	"reflect"
	"testing"

	"github.com/mlpanel/mlpanel/services/projects/app"
)

// The client's ExportPlan is the service's (app.ExportPlan) field for
// field: it is kept apart only so callers need not import the app.
func TestExportPlanIsTheService(t *testing.T) {
	tags := func(v any) map[string]reflect.Type {
		out := map[string]reflect.Type{}
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			out[rt.Field(i).Tag.Get("json")] = rt.Field(i).Type
		}
		return out
	}
	if c, s := tags(ExportPlan{}), tags(app.ExportPlan{}); !reflect.DeepEqual(c, s) {
		t.Errorf("client.ExportPlan has %v, the service answers %v", c, s)
	}
}
