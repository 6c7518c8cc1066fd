package gateway

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
)

// formEcho mounts pattern on a bare engine with a handler that answers
// the body buildRequest made of the request, as the services receive it.
func formEcho(method, pattern string) *gin.Engine {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.Handle(method, pattern, func(c *gin.Context) {
		r, err := buildRequest(c, 1<<20)
		if err != nil {
			writeError(c, err)
			return
		}
		c.Data(http.StatusOK, "application/json", r.Body)
	})
	return e
}

func ginPattern(openapiPath string) string {
	segs := strings.Split(openapiPath, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = ":" + strings.Trim(s, "{}")
		}
	}
	return strings.Join(segs, "/")
}

func concretePath(openapiPath string) string {
	segs := strings.Split(openapiPath, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "1"
		}
	}
	return strings.Join(segs, "/")
}

func sendForm(t *testing.T, e *gin.Engine, method, path, contentType string, vals url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var body bytes.Buffer
	ct := contentType
	if contentType == "multipart/form-data" {
		mw := multipart.NewWriter(&body)
		for k, vs := range vals {
			_ = mw.WriteField(k, vs[0])
		}
		_ = mw.Close()
		ct = mw.FormDataContentType()
	} else {
		body.WriteString(vals.Encode())
	}
	req := httptest.NewRequest(method, path, &body)
	req.Header.Set("Content-Type", ct)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	return w
}

// sample is a form value of a documented type and the JSON it must become.
func sample(typ string) (form string, want any) {
	switch typ {
	case openapi3.TypeBoolean:
		return "true", true
	case openapi3.TypeInteger:
		return "42", float64(42)
	case openapi3.TypeNumber:
		return "2.5", 2.5
	}
	return "some text", "some text"
}

// Every operation that documents a form body gets its typed fields as
// JSON of that type: a form with admin=true creates an admin, not a 400.
func TestFormFieldsTypedByTheDocument(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	typed := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data"} {
				if op.RequestBody.Value.Content.Get(ct) == nil || strings.HasSuffix(path, "/predict") {
					continue // predict's form is the data plane's, adapted in proxy_deployer.go
				}
				props := formFields(method, ginPattern(path), ct)
				vals, want := url.Values{}, map[string]any{}
				for name, ref := range props {
					v, w := sample(formType(ref))
					vals.Set(name, v)
					want[name] = w
					if formType(ref) != openapi3.TypeString && formType(ref) != "" {
						typed++
					}
				}
				if len(vals) == 0 {
					t.Errorf("%s %s %s: the document names no form fields", method, path, ct)
					continue
				}
				w := sendForm(t, formEcho(method, ginPattern(path)), method, concretePath(path), ct, vals)
				if w.Code != http.StatusOK {
					t.Errorf("%s %s %s: %d %s", method, path, ct, w.Code, w.Body)
					continue
				}
				var got map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				for name, wv := range want {
					if got[name] != wv {
						t.Errorf("%s %s %s: field %s = %#v, want %#v", method, path, ct, name, got[name], wv)
					}
				}
			}
		}
	}
	if typed == 0 {
		t.Fatal("no form field of the document is a boolean or a number: the test proves nothing")
	}
}

func TestFormUserAdmin(t *testing.T) {
	e := formEcho(http.MethodPost, "/users")
	for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data"} {
		w := sendForm(t, e, http.MethodPost, "/users", ct, url.Values{"name": {"ada"}, "admin": {"true"}})
		if w.Code != http.StatusOK || w.Body.String() != `{"admin":true,"name":"ada"}` {
			t.Errorf("%s: %d %s", ct, w.Code, w.Body)
		}
		for _, bad := range []string{"yes please", "0", "1", "on", ""} {
			w = sendForm(t, e, http.MethodPost, "/users", ct, url.Values{"name": {"ada"}, "admin": {bad}})
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `admin=\"`+bad+`\": want true or false`) {
				t.Errorf("%s: admin=%q: %d %s", ct, bad, w.Code, w.Body)
			}
		}
	}
	// A field the document does not type stays a string.
	w := sendForm(t, e, http.MethodPost, "/users", "application/x-www-form-urlencoded", url.Values{"name": {"ada"}, "extra": {"1"}})
	if w.Body.String() != `{"extra":"1","name":"ada"}` {
		t.Errorf("untyped field: %s", w.Body)
	}
}

// oneOf [string, integer] (a deployment's project_id and version) stays
// a string; the service reads both.
func TestFormTypeOpenAlternatives(t *testing.T) {
	str := &openapi3.SchemaRef{Value: openapi3.NewStringSchema()}
	num := &openapi3.SchemaRef{Value: openapi3.NewIntegerSchema()}
	if got := formType(&openapi3.SchemaRef{Value: &openapi3.Schema{OneOf: openapi3.SchemaRefs{str, num}}}); got != "" {
		t.Errorf("oneOf string|integer: %q", got)
	}
	if got := formType(&openapi3.SchemaRef{Value: &openapi3.Schema{AllOf: openapi3.SchemaRefs{num}}}); got != openapi3.TypeInteger {
		t.Errorf("allOf integer: %q", got)
	}
}

// No field of the document is nullable; Go would decode null as "" (a
// null status or name would pass as "not given").
func TestNullRefused(t *testing.T) {
	e := formEcho(http.MethodPost, "/users/:name/tokens")
	for body, at := range map[string]string{
		`{"name": null}`:                      `"name"`,
		`{"status": "running", "type": null}`: `"type"`,
		`{"tags": {"a": "1", "b": null}}`:     `"tags"."b"`,
		`{"rows": [1, null]}`:                 `"rows"[1]`,
		`null`:                                ``,
	} {
		req := httptest.NewRequest(http.MethodPost, "/users/ada/tokens", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if at == "" {
			// A bare null is no JSON object: refused as such.
			if w.Code != http.StatusBadRequest {
				t.Errorf("%s: %d %s", body, w.Code, w.Body)
			}
			continue
		}
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "body field "+strings.ReplaceAll(at, `"`, `\"`)+" is null") {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/users/ada/tokens", strings.NewReader(`{"name": "ci", "tags": {"a": ""}}`))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Errorf("a body without null: %d %s", w.Code, w.Body)
	}
}
