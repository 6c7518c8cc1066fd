package mlflowdb

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// errUntranslatable marks a filter or order the SQL path does not answer
// itself: the caller asks MLflow instead, so MLflow's own answer (or its
// error message) is what the user sees.
var errUntranslatable = fmt.Errorf("not translatable to SQL")

// grammarError is a filter MLflow's own parser (SearchUtils) refuses,
// with what it says: every project's server would answer 400 with it,
// so nobody needs to be asked (or woken) to hear it. The parser returns
// it only where MLflow's refusal is certain; anything else it does not
// read is errUntranslatable, left to MLflow's server.
type grammarError struct{ msg string }

func (e *grammarError) Error() string { return e.msg }

func refused(format string, args ...any) error {
	return &grammarError{msg: fmt.Sprintf(format, args...)}
}

// mlflowIdentifiers is SearchUtils._IDENTIFIERS, as MLflow lists them in
// its message.
const mlflowIdentifiers = "['metric', 'parameter', 'tag', 'attribute', 'dataset']"

// clause is one comparison of an MLflow run filter, normalised as
// SearchUtils.parse_search_filter leaves it.
type clause struct {
	kind  string // metric, parameter, tag, attribute, dataset
	key   string
	op    string // upper case
	value any    // float64 for metrics, int64/float64 for numeric attributes, string, []string
}

var identifierKinds = map[string]string{
	"metric": "metric", "metrics": "metric",
	"parameter": "parameter", "parameters": "parameter", "param": "parameter", "params": "parameter",
	"tag": "tag", "tags": "tag",
	"attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
	"dataset": "dataset", "datasets": "dataset",
}

// Attribute keys MLflow searches (RunInfo's searchable attributes and
// their aliases) and the runs column each reads.
var stringAttributes = map[string]string{"run_id": "run_uuid", "run_name": "name", "user_id": "user_id", "status": "status", "artifact_uri": "artifact_uri"}
var numericAttributes = map[string]string{"start_time": "start_time", "end_time": "end_time", "created": "start_time", "Created": "start_time"}

var comparators = map[string]map[string]bool{
	"metric":    {">": true, ">=": true, "!=": true, "=": true, "<": true, "<=": true},
	"parameter": {"!=": true, "=": true, "LIKE": true, "ILIKE": true, "IS NULL": true, "IS NOT NULL": true},
	"tag":       {"!=": true, "=": true, "LIKE": true, "ILIKE": true, "IS NULL": true, "IS NOT NULL": true},
	"string":    {"!=": true, "=": true, "LIKE": true, "ILIKE": true, "IN": true, "NOT IN": true},
	"numeric":   {">": true, ">=": true, "!=": true, "=": true, "<": true, "<=": true},
	"dataset":   {"!=": true, "=": true, "LIKE": true, "ILIKE": true, "IN": true, "NOT IN": true},
}

// The parser accepts a strict subset of what MLflow's sqlparse-based one
// does: dotted identifiers whose parts start with a letter (or are
// backquoted), quoted strings without quotes or backslashes inside,
// unsigned decimal numbers. Anything else is errUntranslatable, never a
// guess.
var (
	reSpace  = regexp.MustCompile(`^\s+`)
	reIdent  = regexp.MustCompile("^(?:[A-Za-z][A-Za-z0-9_]*|`[^`]+`)(?:\\.(?:[A-Za-z][A-Za-z0-9_]*|`[^`]+`|\"[^\"\\\\]*\"|'[^'\\\\]*'))*")
	reString = regexp.MustCompile(`^(?:'[^'\\]*'|"[^"\\]*")`)
	reNumber = regexp.MustCompile(`^[0-9]+(?:\.[0-9]+)?(?:[^A-Za-z0-9_.]|$)`)
	reOp     = regexp.MustCompile(`^(?:!=|<>|<=|>=|=|<|>)`)
	reWord   = regexp.MustCompile(`^[A-Za-z]+\b`)
)

type token struct {
	t string // ident, string, number, op, word, (, ), ,
	v string
}

func tokenize(s string) ([]token, error) {
	var out []token
	for len(s) > 0 {
		if m := reSpace.FindString(s); m != "" {
			s = s[len(m):]
			continue
		}
		switch {
		case s[0] == '(' || s[0] == ')' || s[0] == ',':
			out = append(out, token{string(s[0]), string(s[0])})
			s = s[1:]
			continue
		}
		if m := reString.FindString(s); m != "" {
			out = append(out, token{"string", m[1 : len(m)-1]})
			s = s[len(m):]
			continue
		}
		if m := reNumber.FindString(s); m != "" {
			m = strings.TrimRight(m, " \t\r\n()=<>!,'\"")
			out = append(out, token{"number", m})
			s = s[len(m):]
			continue
		}
		if m := reOp.FindString(s); m != "" {
			out = append(out, token{"op", m})
			s = s[len(m):]
			continue
		}
		if m := reWord.FindString(s); m != "" {
			switch u := strings.ToUpper(m); u {
			case "AND", "LIKE", "ILIKE", "IN", "NOT", "IS", "NULL":
				if len(s) == len(m) || s[len(m)] != '.' {
					out = append(out, token{"word", u})
					s = s[len(m):]
					continue
				}
			}
		}
		if m := reIdent.FindString(s); m != "" {
			out = append(out, token{"ident", m})
			s = s[len(m):]
			continue
		}
		return nil, errUntranslatable
	}
	return out, nil
}

// parseFilter parses an MLflow run filter into its AND-ed comparisons.
func parseFilter(s string) ([]clause, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	var out []clause
	for i := 0; i < len(toks); {
		if len(out) > 0 {
			if toks[i].t == "ident" && strings.EqualFold(toks[i].v, "OR") {
				return nil, refused("Invalid clause(s) in filter string: 'OR'. MLflow's search joins clauses with AND only: run one search per alternative")
			}
			if toks[i] != (token{"word", "AND"}) {
				return nil, errUntranslatable
			}
			i++
		}
		if i >= len(toks) || toks[i].t != "ident" {
			return nil, errUntranslatable
		}
		kind, key, err := identifier(toks[i].v)
		if err != nil {
			return nil, err
		}
		i++
		var op string
		switch {
		case i < len(toks) && toks[i].t == "op":
			op = toks[i].v
			i++
		case i+1 < len(toks) && toks[i].v == "IS" && toks[i+1].v == "NULL":
			op, i = "IS NULL", i+2
		case i+2 < len(toks) && toks[i].v == "IS" && toks[i+1].v == "NOT" && toks[i+2].v == "NULL":
			op, i = "IS NOT NULL", i+3
		case i+1 < len(toks) && toks[i].v == "NOT" && toks[i+1].v == "IN":
			op, i = "NOT IN", i+2
		case i < len(toks) && toks[i].t == "word" && (toks[i].v == "LIKE" || toks[i].v == "ILIKE" || toks[i].v == "IN"):
			op = toks[i].v
			i++
		default:
			return nil, errUntranslatable
		}
		c := clause{kind: kind, key: key, op: op}
		group := kind
		if kind == "attribute" {
			if _, ok := numericAttributes[key]; ok {
				group = "numeric"
			} else if _, ok := stringAttributes[key]; ok {
				group = "string"
			} else {
				return nil, errUntranslatable
			}
		}
		if kind == "dataset" && key != "name" && key != "digest" && key != "context" {
			return nil, refused("Invalid dataset key '%s' specified. Valid keys are '{'name', 'digest', 'context'}' (datasets.name, datasets.digest or datasets.context)", key)
		}
		var badOp error
		if !comparators[group][op] {
			if !wrongComparator(group, op) {
				return nil, errUntranslatable
			}
			// MLflow reads the value before it judges the comparator: a
			// wrong value is what its message names first.
			badOp = refused("%s (%s.%s: %s takes %s)", mlflowComparatorRefusal(group, op), kind, key, groupNames[group], comparatorList(group))
		}
		switch {
		case op == "IS NULL" || op == "IS NOT NULL":
		case op == "IN" || op == "NOT IN":
			if !(kind == "attribute" && key == "run_id") && kind != "dataset" {
				return nil, errUntranslatable
			}
			var list []string
			if i >= len(toks) || toks[i].t != "(" {
				return nil, errUntranslatable
			}
			i++
			for {
				if i+1 >= len(toks) || toks[i].t != "string" {
					return nil, errUntranslatable
				}
				list = append(list, toks[i].v)
				i++
				if toks[i].t == ")" {
					i++
					break
				}
				if toks[i].t != "," {
					return nil, errUntranslatable
				}
				i++
			}
			c.value = list
		default:
			if i >= len(toks) {
				return nil, errUntranslatable
			}
			v := toks[i]
			i++
			switch group {
			case "metric":
				if v.t == "string" {
					return nil, refused("Expected numeric value type for metric. Found '%s'", v.v)
				}
				if v.t != "number" {
					return nil, errUntranslatable
				}
				f, err := strconv.ParseFloat(v.v, 64)
				if err != nil {
					return nil, errUntranslatable
				}
				c.value = f
			case "numeric":
				if v.t == "string" {
					return nil, refused("Expected numeric value type for numeric attribute: %s. Found '%s' (a time in milliseconds since the epoch, unquoted)", key, v.v)
				}
				if v.t != "number" {
					return nil, errUntranslatable
				}
				if strings.Contains(v.v, ".") {
					f, err := strconv.ParseFloat(v.v, 64)
					if err != nil {
						return nil, errUntranslatable
					}
					c.value = f
				} else {
					n, err := strconv.ParseInt(v.v, 10, 64)
					if err != nil {
						return nil, errUntranslatable
					}
					c.value = n
				}
			default:
				if v.t == "number" && (kind == "parameter" || kind == "tag") {
					return nil, refused("Expected a quoted string value for %s (e.g. 'my-value'). Got value %s (%ss are strings: quote it)", kind, v.v, kind)
				}
				if v.t != "string" {
					return nil, errUntranslatable
				}
				c.value = v.v
			}
		}
		if badOp != nil {
			return nil, badOp
		}
		out = append(out, c)
	}
	return out, nil
}

// identifier splits "metrics.`my key`" into MLflow's normalised kind and
// key; a bare name is an attribute, as in MLflow.
func identifier(s string) (kind, key string, err error) {
	prefix, rest, dotted := strings.Cut(s, ".")
	if !dotted {
		return "", "", errUntranslatable // bare names: sqlparse may read them as keywords
	}
	kind, ok := identifierKinds[trimQuote(prefix, '`')]
	if !ok {
		if reBareWord.MatchString(prefix) || strings.HasPrefix(prefix, "`") {
			return "", "", refused("Invalid entity type '%s'. Valid values are %s (or their plurals, e.g. metrics.accuracy)", trimQuote(prefix, '`'), mlflowIdentifiers)
		}
		return "", "", errUntranslatable
	}
	key = rest
	if len(key) >= 2 && (key[0] == '"' || key[0] == '\'') && key[len(key)-1] == key[0] {
		key = key[1 : len(key)-1]
	}
	key = trimQuote(key, '`')
	if key == "" || strings.ContainsAny(key, "`'\"") {
		return "", "", errUntranslatable
	}
	return kind, key, nil
}

func trimQuote(s string, q byte) string {
	if len(s) >= 2 && s[0] == q && s[len(s)-1] == q {
		return s[1 : len(s)-1]
	}
	return s
}

var reBareWord = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// groupNames name the comparator groups in messages.
var groupNames = map[string]string{"metric": "a metric", "parameter": "a param", "tag": "a tag",
	"string": "a string attribute", "numeric": "a numeric attribute", "dataset": "a dataset attribute"}

// wrongComparator reports whether MLflow certainly refuses op for group:
// an ordering on a param, tag or string, a pattern on a number. (IN and
// IS NULL on the other kinds are left to MLflow, whose answer differs
// between versions.)
func wrongComparator(group, op string) bool {
	if op == "<>" {
		return true // SQL's, never MLflow's
	}
	switch group {
	case "metric", "numeric":
		return op == "LIKE" || op == "ILIKE"
	case "parameter", "tag", "string", "dataset":
		return op == "<" || op == ">" || op == "<=" || op == ">="
	}
	return false
}

func comparatorList(group string) string {
	return strings.Join(comparatorsOf(group), ", ")
}

func comparatorsOf(group string) []string {
	var ops []string
	for _, op := range []string{"=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"} {
		if comparators[group][op] {
			ops = append(ops, op)
		}
	}
	return ops
}

// mlflowComparatorRefusal is SearchUtils' message for a comparator the
// group does not take, quirks kept (some groups leave the quote open;
// numeric attributes list the string attributes' set), so the up-front
// refusal reads as MLflow's server's does. Python prints the set in an
// order that changes with every MLflow process; this one is fixed.
func mlflowComparatorRefusal(group, op string) string {
	shown, closing := group, "'"
	switch group {
	case "metric", "tag", "dataset":
		closing = ""
	case "numeric":
		shown, closing = "string", ""
	}
	set := comparatorsOf(shown)
	for i, o := range set {
		set[i] = "'" + o + "'"
	}
	return fmt.Sprintf("Invalid comparator '%s' not one of '{%s}%s", op, strings.Join(set, ", "), closing)
}

// orderClause is one parsed order_by clause.
type orderClause struct {
	kind, key string
	asc       bool
}

var reOrder = regexp.MustCompile("^\\s*((?:[A-Za-z][A-Za-z0-9_]*|`[^`]+`)\\.(?:[A-Za-z][A-Za-z0-9_.]*|`[^`]+`))(?:\\s+([A-Za-z]+))?\\s*$")

// parseOrder parses order_by clauses as _get_orderby_clauses reads them.
func parseOrder(clauses []string) ([]orderClause, error) {
	var out []orderClause
	seen := map[[2]string]bool{}
	for _, c := range clauses {
		m := reOrder.FindStringSubmatch(c)
		if m == nil {
			return nil, errUntranslatable
		}
		kind, key, err := identifier(m[1])
		if err != nil {
			return nil, err
		}
		asc := true
		switch strings.ToLower(m[2]) {
		case "", "asc":
		case "desc":
			asc = false
		default:
			return nil, errUntranslatable
		}
		switch kind {
		case "metric", "parameter", "tag":
		case "attribute":
			if key == "created" || key == "Created" {
				key = "start_time"
			}
			if _, ok := orderAttributes[key]; !ok {
				return nil, errUntranslatable
			}
		default:
			return nil, errUntranslatable
		}
		if seen[[2]string{kind, key}] {
			return nil, errUntranslatable // MLflow rejects duplicates
		}
		seen[[2]string{kind, key}] = true
		out = append(out, orderClause{kind: kind, key: key, asc: asc})
	}
	return out, nil
}

// orderAttributes are the attributes the SQL path orders by (searchable
// ones, which MLflow orders by their runs column).
var orderAttributes = map[string]string{"run_id": "run_uuid", "run_name": "name", "user_id": "user_id", "status": "status", "artifact_uri": "artifact_uri", "start_time": "start_time", "end_time": "end_time"}
