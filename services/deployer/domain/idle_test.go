package domain

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// idle_timeout and min_awake as a KServe user reads minReplicas: no
// sleep by default; an idle_timeout alone scales to zero; min_awake 1
// with an idle_timeout, or 0 without one, contradict each other.
func TestIdleSettings(t *testing.T) {
	var d Deployment
	d.Type = TypeLocal
	if d.Idle() != 0 || d.Awake() != 1 {
		t.Fatalf("default: idle %s, min_awake %d; want never asleep, 1", d.Idle(), d.Awake())
	}
	if err := d.SetIdle(ptr("90s"), nil); err != nil || d.Idle() != 90*time.Second || d.Awake() != 0 {
		t.Fatalf("idle_timeout 90s: %v, idle %s, min_awake %d", err, d.Idle(), d.Awake())
	}
	for _, bad := range []struct {
		idle  *string
		awake *int
		want  string
	}{
		{nil, ptr(1), "min_awake 1"},
		{ptr("0"), ptr(0), "min_awake 0"},
		{ptr("soon"), nil, "invalid idle_timeout"},
		{ptr("500ms"), nil, "invalid idle_timeout"},
		{ptr("721h"), nil, "invalid idle_timeout"},
		{nil, ptr(2), "invalid min_awake"},
	} {
		before := d
		if err := d.SetIdle(bad.idle, bad.awake); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("SetIdle(%v, %v): %v, want an error with %q", bad.idle, bad.awake, err, bad.want)
		}
		if d.IdleTimeout != before.IdleTimeout || d.MinAwake != before.MinAwake {
			t.Errorf("a refused change changed the deployment")
		}
	}
	if err := d.SetIdle(ptr("0"), ptr(1)); err != nil || d.Idle() != 0 || d.Awake() != 1 || d.IdleTimeout != "" {
		t.Fatalf("back to always awake: %v, %+v", err, d)
	}
	gcp := Deployment{Type: TypeGCP}
	if err := gcp.SetIdle(ptr("5m"), nil); err == nil || !strings.Contains(err.Error(), "only local") {
		t.Fatalf("a gcp deployment with idle_timeout: %v", err)
	}
}
