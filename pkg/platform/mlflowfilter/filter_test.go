package mlflowfilter

import (
	"strings"
	"testing"
)

func TestClausesCountsANDOutsideQuotes(t *testing.T) {
	cases := map[string]int{
		"":                  0,
		"metrics.acc > 0.9": 1,
		"metrics.acc > 0.9 and params.lr = '0.1'":                              2,
		"params.x = 'a AND b' AND tags.`and` = \"and\"":                        2,
		"name LIKE 'band%' AND attributes.status='FINISHED'AND metrics.band>1": 3,
	}
	for f, want := range cases {
		if got := Clauses(f); got != want {
			t.Errorf("Clauses(%q) = %d, want %d", f, got, want)
		}
	}
}

func TestCheckStatesTheLimits(t *testing.T) {
	many := strings.TrimSuffix(strings.Repeat("metrics.m > 0 AND ", 1000), " AND ")
	err := Check("filter", many)
	if err == nil || !strings.Contains(err.Error(), "1000 clauses") || !strings.Contains(err.Error(), "at most 50") {
		t.Fatalf("Check(1000 clauses) = %v; want an error naming the count and the limit", err)
	}
	long := "name LIKE '" + strings.Repeat("x", MaxLength) + "'"
	if err := Check("filter", long); err == nil || !strings.Contains(err.Error(), "in 4096 bytes") {
		t.Fatalf("Check(long) = %v; want the length limit", err)
	}
	ok := strings.TrimSuffix(strings.Repeat("metrics.m > 0 AND ", MaxClauses), " AND ")
	if err := Check("filter", ok); err != nil {
		t.Fatalf("Check(%d clauses) = %v; want accepted", MaxClauses, err)
	}
}
