package gateway

import (
	"strings"
	"testing"
)

// MLPANEL_PREDICT_MAX_BYTES is read with the other settings: a malformed
// value stops the start naming it (it used to fall back to the default
// with a warning), and a good one reaches the predict proxy's limit.
func TestPredictMaxBytesIsASetting(t *testing.T) {
	cfg, err := ConfigFromEnv()
	if err != nil || cfg.PredictMaxBytes != DefaultPredictMaxBytes {
		t.Fatalf("default: %d, %v; want %d", cfg.PredictMaxBytes, err, DefaultPredictMaxBytes)
	}
	for _, bad := range []string{"32MB", "-1", "0"} {
		t.Setenv("MLPANEL_PREDICT_MAX_BYTES", bad)
		if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "MLPANEL_PREDICT_MAX_BYTES") {
			t.Errorf("MLPANEL_PREDICT_MAX_BYTES=%s: %v; want an error naming the variable", bad, err)
		}
	}
	t.Setenv("MLPANEL_PREDICT_MAX_BYTES", "1024")
	cfg, err = ConfigFromEnv()
	if err != nil || cfg.PredictMaxBytes != 1024 {
		t.Fatalf("MLPANEL_PREDICT_MAX_BYTES=1024: %d, %v", cfg.PredictMaxBytes, err)
	}
}
