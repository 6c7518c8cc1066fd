package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

func TestHTTP(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if err := run([]string{"http", srv.URL + "/healthz"}); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := run([]string{"http", srv.URL + "/healthz"}); err == nil {
		t.Fatal("a 503 passed the check")
	}
}

// TestNATS: the check passes only while an instance of the named micro
// service answers $SRV.INFO on MLPANEL_NATS_URL and, since every service
// advertises its host, only for the instance on this host: a scaled
// replica's healthcheck checks itself.
func TestNATS(t *testing.T) {
	ns, err := embedded.StartNATS(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	t.Setenv("MLPANEL_NATS_URL", ns.ClientURL())
	if err := run([]string{"nats", "projects"}); err == nil {
		t.Fatal("passed with no service running")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	svc, err := micro.AddService(nc, micro.Config{Name: "projects", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"nats", "projects"}); err != nil {
		t.Fatalf("service running: %v", err)
	}
	if err := run([]string{"nats", "tracking"}); err == nil {
		t.Fatal("passed for another service than the one running")
	}
	// A replica on another host: the container on this host does not
	// pass on its answer.
	other, err := micro.AddService(nc, micro.Config{Name: "deployer", Version: "0.0.1", Metadata: map[string]string{events.HostMetadata: "elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"nats", "deployer"}); err == nil {
		t.Fatal("passed for an instance on another host")
	}
	// The instance in this container, registered as every service
	// registers (events.AddService advertises the host).
	mine, err := events.AddService(nc, "deployer", "0.0.1", "", time.Second, map[string]events.Operation{})
	if err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"nats", "deployer"}); err != nil {
		t.Fatalf("an instance on this host runs: %v", err)
	}
	_ = mine.Stop()
	_ = other.Stop()
	_ = svc.Stop()
	if err := run([]string{"nats", "projects"}); err == nil {
		t.Fatal("passed after the service stopped")
	}
	if err := run([]string{"tcp", "x"}); err == nil {
		t.Fatal("an unknown check passed")
	}
}
