package gateway

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// The served openapi.yaml is generated from the files in openapi/: our
// base (info, ops and docs endpoints, shared components), the projects
// part, and the fragments each service's engineers keep beside their
// routes. Generating it in a test keeps every part owned by the people who
// change the code it describes, while the gateway serves one document.
var updateSpec = flag.Bool("update-spec", false, "rewrite openapi.yaml from openapi/*.yaml")

const specHeader = `Generated from openapi/*.yaml by
  go test ./services/gateway -run TestOpenAPIDocumentIsTheMerge -update-spec
Edit those files, not this one.`

// specSourceOrder puts the entity groups in the order a reader meets
// them; base.yaml's own paths (ops, docs) go last. Fragments not named
// here follow in name order.
var specSourceOrder = []string{"projects.yaml", "tracking.yaml", "deployer.yaml", "auth.yaml"}

func TestOpenAPIDocumentIsTheMerge(t *testing.T) {
	merged, notes, err := mergeSpec("openapi")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		t.Log(n)
	}
	if *updateSpec {
		// Never write a document the gateway could not load: the gateway
		// would serve a 500 at /openapi.json and check nothing.
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(merged)
		if err == nil {
			err = doc.Validate(loader.Context)
		}
		if err != nil {
			t.Fatalf("the merged document is not valid, openapi.yaml is left as it was: %v", err)
		}
		if err := os.WriteFile("openapi.yaml", merged, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	current, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(current, merged) {
		t.Fatalf("openapi.yaml is not the merge of openapi/*.yaml (a fragment changed): run\n  go test ./services/gateway -run TestOpenAPIDocumentIsTheMerge -update-spec\nand commit openapi.yaml")
	}
}

// The document loads and is valid OpenAPI 3.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
}

// The drift guard: every route the gateway serves is in the document, and
// every operation in the document is served.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{MaxBody: 1 << 20}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e, ok := g.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("Handler() is a %T, not a *gin.Engine", g.Handler())
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		served[r.Method+" "+openAPIPath(r.Path)] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for op := range served {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for op := range documented {
		if !served[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%d routes are served but not in openapi.yaml (add them to a fragment in openapi/ and regenerate):\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("%d operations are in openapi.yaml but not served:\n  %s", len(extra), strings.Join(extra, "\n  "))
	}
}

// Every operation says what it answers and has a unique operationId, so
// generated clients get usable names.
func TestOpenAPIOperationsAreComplete(t *testing.T) {
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", where, other, op.OperationID)
			}
			ids[op.OperationID] = where
			if op.Summary == "" {
				t.Errorf("%s has no summary", where)
			}
			for code, resp := range op.Responses.Map() {
				if resp.Value != nil && resp.Value.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s does not declare X-Request-ID", where, code)
				}
			}
		}
	}
}

// mergeSpec builds the document from dir's files. Components defined
// twice keep the first definition (base.yaml first, which owns the shared
// ones: list parameters, the error body and responses); a differing
// duplicate is reported in notes. It then adds what the gateway itself
// guarantees to every operation, so no fragment has to repeat it: the
// X-Request-ID header on every response, 401 and 403 where a token may be
// needed, and the errors every control-plane call can answer.
func mergeSpec(dir string) ([]byte, []string, error) {
	var notes []string
	load := func(name string) (*yaml.Node, error) {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s is not a YAML mapping", name)
		}
		return doc.Content[0], nil
	}
	base, err := load("base.yaml")
	if err != nil {
		return nil, nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var names []string
	for _, f := range files {
		if n := filepath.Base(f); n != "base.yaml" {
			names = append(names, n)
		}
	}
	rank := func(n string) int {
		if i := slices.Index(specSourceOrder, n); i >= 0 {
			return i
		}
		return len(specSourceOrder)
	}
	sort.SliceStable(names, func(i, j int) bool {
		if rank(names[i]) != rank(names[j]) {
			return rank(names[i]) < rank(names[j])
		}
		return names[i] < names[j]
	})
	type source struct {
		name string
		root *yaml.Node
	}
	sources := []source{{"base.yaml", base}}
	for _, n := range names {
		root, err := load(n)
		if err != nil {
			return nil, nil, err
		}
		sources = append(sources, source{n, root})
	}

	out := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range []string{"openapi", "info", "servers"} {
		if v := mapGet(base, k); v != nil {
			mapSet(out, k, v)
		}
	}
	tags := &yaml.Node{Kind: yaml.SequenceNode}
	paths := &yaml.Node{Kind: yaml.MappingNode}
	components := &yaml.Node{Kind: yaml.MappingNode}
	var security *yaml.Node

	// Tags in the order of the paths: the fragments', then base.yaml's.
	for _, src := range append(sources[1:len(sources):len(sources)], sources[0]) {
		for _, tag := range seqItems(mapGet(src.root, "tags")) {
			name := scalar(mapGet(tag, "name"))
			if !slices.ContainsFunc(tags.Content, func(t *yaml.Node) bool { return scalar(mapGet(t, "name")) == name }) {
				tags.Content = append(tags.Content, tag)
			}
		}
	}
	for _, src := range sources {
		if s := mapGet(src.root, "security"); s != nil && security == nil {
			security = s
		}
		for _, sec := range mapPairs(mapGet(src.root, "components")) {
			dst := mapGet(components, sec.key)
			if dst == nil {
				dst = &yaml.Node{Kind: yaml.MappingNode}
				mapSet(components, sec.key, dst)
			}
			for _, c := range mapPairs(sec.val) {
				if have := mapGet(dst, c.key); have != nil {
					if !sameYAML(have, c.val) {
						notes = append(notes, fmt.Sprintf("components.%s.%s in %s differs from an earlier definition; the earlier one is kept", sec.key, c.key, src.name))
					}
					continue
				}
				mapSet(dst, c.key, c.val)
			}
		}
	}
	// Paths: the fragments in order, then base.yaml's own.
	for _, src := range append(sources[1:len(sources):len(sources)], sources[0]) {
		for _, p := range mapPairs(mapGet(src.root, "paths")) {
			have := mapGet(paths, p.key)
			if have == nil {
				mapSet(paths, p.key, p.val)
				continue
			}
			for _, m := range mapPairs(p.val) {
				if prev := mapGet(have, m.key); prev != nil {
					if !sameYAML(prev, m.val) {
						notes = append(notes, fmt.Sprintf("%s %s in %s is defined earlier too; the earlier one is kept", m.key, p.key, src.name))
					}
					continue
				}
				mapSet(have, m.key, m.val)
			}
		}
	}

	control := map[string]bool{}
	for _, rt := range New(Config{}, nil, nil, slog.New(slog.DiscardHandler)).routes() {
		if rt.subject != "" {
			control[strings.ToLower(rt.method)+" "+openAPIPath(rt.path)] = true
		}
	}
	for _, p := range mapPairs(paths) {
		for _, m := range mapPairs(p.val) {
			if !isHTTPMethod(m.key) {
				continue
			}
			resps := mapGet(m.val, "responses")
			if resps == nil {
				resps = &yaml.Node{Kind: yaml.MappingNode}
				mapSet(m.val, "responses", resps)
			}
			add := func(code, ref string) {
				if mapGet(resps, code) == nil {
					mapSet(resps, code, refNode("#/components/responses/"+ref))
				}
			}
			if sec := mapGet(m.val, "security"); sec == nil || len(sec.Content) > 0 {
				add("401", "Unauthorized")
				add("403", "Forbidden")
			}
			if control[m.key+" "+p.key] {
				// buildRequest and events.Call answer these for any call.
				add("400", "BadRequest")
				// A call that names a project or an entity finds it first.
				if namesEntity(components, p.val, m.val) {
					add("404", "NotFound")
				}
				if mapGet(m.val, "requestBody") != nil {
					add("413", "PayloadTooLarge")
				}
				add("500", "InternalError")
				add("503", "ServiceUnavailable")
				add("504", "GatewayTimeout")
			}
			sortResponses(resps)
			for _, r := range mapPairs(resps) {
				addRequestIDHeader(r.val)
			}
		}
	}
	for _, r := range mapPairs(mapGet(components, "responses")) {
		addRequestIDHeader(r.val)
	}
	if h := mapGet(components, "headers"); h == nil || mapGet(h, "XRequestID") == nil {
		return nil, nil, fmt.Errorf("base.yaml must define components.headers.XRequestID")
	}

	mapSet(out, "tags", tags)
	if security != nil {
		mapSet(out, "security", security)
	}
	mapSet(out, "paths", paths)
	mapSet(out, "components", components)
	out.HeadComment = specHeader

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, nil, fmt.Errorf("encoding the merged document: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("encoding the merged document: %w", err)
	}
	return buf.Bytes(), notes, nil
}

// addRequestIDHeader declares X-Request-ID on a response object; a $ref
// response is handled where it is defined.
func addRequestIDHeader(resp *yaml.Node) {
	if resp == nil || resp.Kind != yaml.MappingNode || mapGet(resp, "$ref") != nil {
		return
	}
	h := mapGet(resp, "headers")
	if h == nil {
		h = &yaml.Node{Kind: yaml.MappingNode}
		// Headers read best right after the description.
		mapInsertAfter(resp, "description", "headers", h)
	}
	if mapGet(h, "X-Request-ID") == nil {
		mapSet(h, "X-Request-ID", refNode("#/components/headers/XRequestID"))
	}
}

// namesEntity reports whether an operation has a path parameter or a
// project_id query parameter, directly or through a $ref to components.
func namesEntity(components, item, op *yaml.Node) bool {
	params := append(seqItems(mapGet(item, "parameters")), seqItems(mapGet(op, "parameters"))...)
	for _, p := range params {
		if ref := scalar(mapGet(p, "$ref")); ref != "" {
			p = mapGet(mapGet(components, "parameters"), strings.TrimPrefix(ref, "#/components/parameters/"))
		}
		if scalar(mapGet(p, "in")) == "path" || (scalar(mapGet(p, "in")) == "query" && scalar(mapGet(p, "name")) == "project_id") {
			return true
		}
	}
	return false
}

func sortResponses(resps *yaml.Node) {
	pairs := mapPairs(resps)
	sort.SliceStable(pairs, func(i, j int) bool { return statusRank(pairs[i].key) < statusRank(pairs[j].key) })
	resps.Content = resps.Content[:0]
	for _, p := range pairs {
		resps.Content = append(resps.Content, p.keyNode, p.val)
	}
}

func statusRank(code string) int {
	if n, err := strconv.Atoi(code); err == nil {
		return n
	}
	if len(code) == 3 && strings.HasSuffix(strings.ToUpper(code), "XX") {
		return int(code[0]-'0')*100 + 99
	}
	return 1000 // default
}

func isHTTPMethod(k string) bool {
	switch k {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

func refNode(ref string) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "$ref"},
		{Kind: yaml.ScalarNode, Value: ref, Style: yaml.SingleQuotedStyle},
	}}
}

type pair struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

func mapPairs(m *yaml.Node) []pair {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var ps []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		ps = append(ps, pair{m.Content[i].Value, m.Content[i], m.Content[i+1]})
	}
	return ps
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	for _, p := range mapPairs(m) {
		if p.key == key {
			return p.val
		}
	}
	return nil
}

func mapSet(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}

func mapInsertAfter(m *yaml.Node, after, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == after {
			k := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
			m.Content = slices.Insert(m.Content, i+2, k, v)
			return
		}
	}
	mapSet(m, key, v)
}

func seqItems(s *yaml.Node) []*yaml.Node {
	if s == nil || s.Kind != yaml.SequenceNode {
		return nil
	}
	return s.Content
}

func scalar(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

// sameYAML compares two nodes by meaning, not by layout or comments.
func sameYAML(a, b *yaml.Node) bool {
	var va, vb any
	if a.Decode(&va) != nil || b.Decode(&vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
