// Package mlflowfilter bounds MLflow search filters before they reach a
// tracking server. MLflow evaluates every clause of a filter in one SQL
// query that a request cannot interrupt, so a filter of a thousand ANDed
// clauses keeps a server busy for minutes; both the tracking service and
// the gateway's MLflow proxy refuse such filters up front.
package mlflowfilter

import (
	"fmt"
	"strings"
	"unicode"
)

const (
	// MaxLength is the longest filter accepted, in bytes.
	MaxLength = 4096
	// MaxClauses is the most clauses (conditions joined by AND) accepted.
	MaxClauses = 50
)

// Check returns an error that states the limits when filter exceeds them,
// nil otherwise. name is the parameter's name, for the message.
func Check(name, filter string) error {
	if n := Clauses(filter); len(filter) > MaxLength || n > MaxClauses {
		return fmt.Errorf("%s has %d clauses in %d bytes; at most %d clauses (joined by AND) in %d bytes are allowed: narrow it or split the search",
			name, n, len(filter), MaxClauses, MaxLength)
	}
	return nil
}

// Clauses counts the conditions of a filter: the AND keywords outside
// quoted strings and identifiers, plus one; an empty filter has none.
func Clauses(filter string) int {
	if strings.TrimSpace(filter) == "" {
		return 0
	}
	n := 1
	var quote rune
	word := func(i int) bool { // "and" as a whole word at byte i
		if i+3 > len(filter) || !strings.EqualFold(filter[i:i+3], "and") {
			return false
		}
		before := i == 0 || !isIdent(rune(filter[i-1]))
		after := i+3 == len(filter) || !isIdent(rune(filter[i+3]))
		return before && after
	}
	for i, r := range filter {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"' || r == '`':
			quote = r
		case (r == 'a' || r == 'A') && word(i):
			n++
		}
	}
	return n
}

func isIdent(r rune) bool { return r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r) }
