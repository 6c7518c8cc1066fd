package mlflowclient

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// parseFloat reads a JSON number or one of the strings MLflow uses for
// values JSON cannot hold.
func parseFloat(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] != '"' {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return 0, fmt.Errorf("metric value %s: %w", raw, err)
		}
		return f, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity", "inf":
		return math.Inf(1), nil
	case "-Infinity", "-inf":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("metric value %q: %w", s, err)
	}
	return f, nil
}

// MarshalJSON writes non-finite values as MLflow does ("NaN",
// "Infinity", "-Infinity"), since JSON numbers cannot hold them.
func (m Metric) MarshalJSON() ([]byte, error) {
	type plain struct {
		Key       string `json:"key"`
		Value     any    `json:"value"`
		Timestamp int64  `json:"timestamp"`
		Step      int64  `json:"step"`
	}
	return json.Marshal(plain{Key: m.Key, Value: JSONFloat(m.Value), Timestamp: m.Timestamp, Step: m.Step})
}

// JSONFloat is f as a JSON-encodable value: the number itself, or MLflow's
// string for a non-finite one.
func JSONFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
