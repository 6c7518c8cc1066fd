package conf

import (
	"strings"
	"testing"
)

func TestPortRange(t *testing.T) {
	t.Setenv("MLPANEL_TEST_RANGE", "7000-7009")
	var r Reader
	if got := r.PortRange("TEST_RANGE", "1-2"); got.Lo != 7000 || got.Hi != 7009 || r.Err() != nil {
		t.Fatalf("PortRange = %v, %v", got, r.Err())
	}
	if got := r.PortRange("UNSET_RANGE", "5000-5099"); got.Lo != 5000 || got.Hi != 5099 {
		t.Fatalf("default = %v", got)
	}
	t.Setenv("MLPANEL_TEST_RANGE", "9-1")
	var bad Reader
	bad.PortRange("TEST_RANGE", "1-2")
	if bad.Err() == nil || !strings.Contains(bad.Err().Error(), "MLPANEL_TEST_RANGE") {
		t.Fatalf("a reversed range gave %v; want an error naming the variable", bad.Err())
	}
}
