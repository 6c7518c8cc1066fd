package events_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// Every instance names its host in $SRV.INFO, which the containers'
// healthcheck matches to check the instance in its own container.
func TestServiceAdvertisesItsHost(t *testing.T) {
	nc := startNATS(t)
	svc, err := events.AddService(nc, "hosted", "0.0.1", "", time.Second, map[string]events.Operation{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	msg, err := nc.Request("$SRV.INFO.hosted", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if host, _ := os.Hostname(); host == "" || info.Metadata[events.HostMetadata] != host {
		t.Fatalf("$SRV.INFO metadata %v, want %s=%s", info.Metadata, events.HostMetadata, host)
	}
}
