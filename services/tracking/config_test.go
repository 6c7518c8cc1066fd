package tracking

import (
	"strings"
	"testing"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

func TestConfigDefaultsAndBounds(t *testing.T) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	// The tag repeats the client's constant; they must not drift apart.
	if cfg.PageSize != mc.DefaultPageSize {
		t.Fatalf("MLPANEL_TRACKING_PAGE_SIZE defaults to %d, the client's DefaultPageSize is %d", cfg.PageSize, mc.DefaultPageSize)
	}
	t.Setenv("MLPANEL_TRACKING_PAGE_SIZE", "60000")
	if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "MLPANEL_TRACKING_PAGE_SIZE") {
		t.Fatalf("a page size over 50000: %v; want an error naming the variable", err)
	}
}
