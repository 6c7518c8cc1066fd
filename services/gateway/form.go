package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// formJSON turns form fields into the JSON object the services decode.
// A form carries only strings, so each field is typed by the operation's
// documented request body (the OpenAPI document is the source of truth):
// booleans, integers and numbers become JSON booleans and numbers, objects
// and arrays sent as JSON text become JSON. Fields the document does not
// type, or types it leaves open (string or integer), stay strings.
func formJSON(vals map[string][]string, props openapi3.Schemas) (json.RawMessage, error) {
	form := map[string]any{}
	for k, v := range vals {
		if len(v) == 0 {
			continue
		}
		val, err := formValue(k, v[0], props[k])
		if err != nil {
			return nil, err
		}
		form[k] = val
	}
	b, err := json.Marshal(form)
	if err != nil {
		return nil, events.Errorf(http.StatusBadRequest, "form body cannot be read as JSON: %v", err)
	}
	return b, nil
}

func formValue(name, s string, ref *openapi3.SchemaRef) (any, error) {
	switch formType(ref) {
	case openapi3.TypeBoolean:
		// Only the JSON words: "1", "t" or "on" would be a second
		// spelling the document does not give.
		switch strings.TrimSpace(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, events.Errorf(http.StatusBadRequest, "form field %s=%q: want true or false", name, s)
	case openapi3.TypeInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, events.Errorf(http.StatusBadRequest, "form field %s=%q: want a whole number", name, s)
		}
		return n, nil
	case openapi3.TypeNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, events.Errorf(http.StatusBadRequest, "form field %s=%q: want a number", name, s)
		}
		return f, nil
	case openapi3.TypeObject, openapi3.TypeArray:
		// A form can only carry structure as JSON text; anything else is
		// left for the service to refuse with its own message.
		if t := strings.TrimSpace(s); json.Valid([]byte(t)) {
			return json.RawMessage(t), nil
		}
	}
	return s, nil
}

// formType is the one JSON type a documented field must have, or "" when
// the document allows more than one (or none).
func formType(ref *openapi3.SchemaRef) string {
	if ref == nil || ref.Value == nil {
		return ""
	}
	s := ref.Value
	if s.Type != nil && len(*s.Type) == 1 {
		return (*s.Type)[0]
	}
	if len(s.AllOf) == 1 {
		return formType(s.AllOf[0])
	}
	for _, alts := range [][]*openapi3.SchemaRef{s.OneOf, s.AnyOf} {
		if len(alts) == 0 {
			continue
		}
		t := formType(alts[0])
		for _, a := range alts[1:] {
			if formType(a) != t {
				return ""
			}
		}
		return t
	}
	return ""
}

// formFields are the documented properties of the form body of the
// operation gin matched, for formJSON. None when the document lacks the
// operation: every field then stays a string, as before.
func formFields(method, pattern, contentType string) openapi3.Schemas {
	doc, err := loadSpec()
	if err != nil || pattern == "" {
		return nil
	}
	item := doc.Paths.Value(openAPIPath(pattern))
	if item == nil {
		return nil
	}
	op := item.GetOperation(method)
	if op == nil || op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	content := op.RequestBody.Value.Content
	mt := content.Get(contentType)
	if mt == nil {
		mt = content.Get("application/json")
	}
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return properties(mt.Schema)
}

// properties gathers an object schema's properties, through allOf.
func properties(ref *openapi3.SchemaRef) openapi3.Schemas {
	if ref == nil || ref.Value == nil {
		return nil
	}
	out := openapi3.Schemas{}
	for k, v := range ref.Value.Properties {
		out[k] = v
	}
	for _, part := range ref.Value.AllOf {
		for k, v := range properties(part) {
			out[k] = v
		}
	}
	return out
}
