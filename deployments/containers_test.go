package deployments

// The testcontainers suites: the projects store against a real mongo:7
// (a single-node replica set, as in docker-compose.yml) and pkg/events
// against a real NATS server image. They need a Docker engine and skip,
// saying why, where none answers (as on the development machines and CI,
// which have a docker client but no daemon). Run them where Docker runs:
//
//	go test -run 'TestContainer' -v ./deployments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// The images of docker-compose.yml.
const (
	mongoImage = "mongo:7"
	natsImage  = "nats:2-alpine"
)

// requireDocker skips the test unless a Docker engine answers. The
// testcontainers provider panics on some hosts without one, hence recover.
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the testcontainers suites pull and start images")
	}
	reason := func() (reason string) {
		defer func() {
			if r := recover(); r != nil {
				reason = fmt.Sprint(r)
			}
		}()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			return err.Error()
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Health(ctx); err != nil {
			return err.Error()
		}
		return ""
	}()
	if reason != "" {
		t.Skipf("no Docker engine answers (%s): the testcontainers suites run only where `docker info` works", reason)
	}
}

// startMongo starts mongo:7 as a single-node replica set and returns a
// connection string to it.
func startMongo(t *testing.T, ctx context.Context) string {
	t.Helper()
	c, err := testcontainers.Run(ctx, mongoImage,
		testcontainers.WithCmd("mongod", "--replSet", "rs0", "--bind_ip_all"),
		testcontainers.WithExposedPorts("27017/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("Waiting for connections").WithStartupTimeout(2*time.Minute)),
	)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("starting %s: %v", mongoImage, err)
	}
	// The member's host is the container's own view; clients connect
	// directly, so the host-side port mapping does not matter.
	code, out, err := c.Exec(ctx, []string{"mongosh", "--quiet", "--eval",
		"rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]}).ok"})
	if err != nil || code != 0 {
		msg := ""
		if out != nil {
			b, _ := io.ReadAll(out)
			msg = string(b)
		}
		t.Fatalf("initiating the replica set: exit %d, %v: %s", code, err, msg)
	}
	endpoint, err := c.PortEndpoint(ctx, "27017/tcp", "mongodb")
	if err != nil {
		t.Fatal(err)
	}
	return endpoint + "/?directConnection=true"
}

// TestContainerMongoStore runs the projects store against real MongoDB:
// the same contract as its FerretDB test, plus what only a real server
// guarantees (concurrent counter increments never collide).
func TestContainerMongoStore(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	uri := startMongo(t, ctx)
	// boot.Mongo waits for a primary: the replica set elects itself within
	// a few seconds of rs.initiate.
	client, err := boot.Mongo(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	s, err := adapters.NewMongoStore(ctx, client.Database("mlpanel"))
	if err != nil {
		t.Fatalf("NewMongoStore on %s: %v", mongoImage, err)
	}

	now := time.Now().UTC().Truncate(time.Millisecond)
	a := domain.Project{ID: "1", Seq: 1, Name: "alpha", Port: 5000, Status: domain.StatusTerminated, CreatedAt: now, UpdatedAt: now}
	b := domain.Project{ID: "2", Seq: 2, Name: "beta", Port: 5001, Status: domain.StatusTerminated, CreatedAt: now, UpdatedAt: now}
	for _, p := range []domain.Project{b, a} {
		if err := s.Insert(ctx, p); err != nil {
			t.Fatalf("Insert %s: %v", p.Name, err)
		}
	}
	dup := a
	dup.ID, dup.Seq = "3", 3
	if err := s.Insert(ctx, dup); !errors.Is(err, app.ErrDuplicateName) {
		t.Fatalf("inserting a duplicate name: %v, want ErrDuplicateName (the unique index)", err)
	}
	got, err := s.GetByName(ctx, "alpha")
	if err != nil || got.ID != "1" || !got.CreatedAt.Equal(now) {
		t.Fatalf("GetByName = %+v, %v", got, err)
	}
	got.Status, got.Pid = domain.StatusRunning, 42
	if err := s.Replace(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Get(ctx, "1"); got.Pid != 42 || got.Status != domain.StatusRunning {
		t.Fatalf("Replace did not persist: %+v", got)
	}
	renamed := got
	renamed.Name = "beta"
	if err := s.Replace(ctx, renamed); !errors.Is(err, app.ErrDuplicateName) {
		t.Fatalf("renaming onto another name: %v, want ErrDuplicateName", err)
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "1" || all[1].ID != "2" {
		t.Fatalf("All = %+v, %v; want both, ordered by id number", all, err)
	}
	if err := s.Delete(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "2"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}

	// MongoDB applies $inc atomically, so ids stay unique even with several
	// writers (FerretDB v1 does not promise this; see pkg/platform/embedded).
	const n = 50
	seen := make(chan int64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq, err := s.NextSeq(ctx)
			if err != nil {
				t.Errorf("NextSeq: %v", err)
			}
			seen <- seq
		}()
	}
	wg.Wait()
	close(seen)
	unique := map[int64]bool{}
	for seq := range seen {
		if unique[seq] {
			t.Errorf("NextSeq handed out %d twice", seq)
		}
		unique[seq] = true
	}
}

// TestContainerEvents publishes through pkg/events to a real NATS server
// with JetStream: the stream is created as services expect, a retried
// publish is stored once, and a durable consumer reads the CloudEvent.
func TestContainerEvents(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testcontainers.Run(ctx, natsImage,
		testcontainers.WithCmd("nats-server", "--jetstream", "--store_dir", "/data"),
		testcontainers.WithExposedPorts("4222/tcp"),
		testcontainers.WithWaitStrategy(wait.ForLog("Server is ready").WithStartupTimeout(time.Minute)),
	)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("starting %s: %v", natsImage, err)
	}
	url, err := c.PortEndpoint(ctx, "4222/tcp", "nats")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := events.EnsureStream(ctx, js)
	if err != nil {
		t.Fatalf("EnsureStream on %s: %v", natsImage, err)
	}
	// A second service starting must find the stream as it is.
	if _, err := events.EnsureStream(ctx, js); err != nil {
		t.Fatalf("EnsureStream again: %v", err)
	}

	pub := events.NewPublisher(js, "mlpanel/test")
	ev, err := events.New("mlpanel/test", "project", "7", "running", map[string]string{"id": "7", "status": "running"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the retry after a lost ack
		if err := pub.PublishEvent(ctx, ev); err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
	}
	if _, err := pub.Publish(ctx, "deployment", "3", "stopped", map[string]string{"id": "3"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2: the retried publish must be deduplicated by Nats-Msg-Id", info.State.Msgs)
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable:       "container-test",
		FilterSubject: events.SubjectPrefix + ".project.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("the durable consumer got nothing: %v", err)
	}
	if msg.Subject() != events.Subject("project", "7", "running") {
		t.Errorf("subject %s, want %s", msg.Subject(), events.Subject("project", "7", "running"))
	}
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != ev.ID {
		t.Errorf("Nats-Msg-Id %q, want the event id %q", id, ev.ID)
	}
	got, err := events.Decode(msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Type != ev.Type || got.Source != "mlpanel/test" || string(got.Data) != string(ev.Data) {
		t.Errorf("decoded %+v, want %+v", got, ev)
	}
	if err := msg.Ack(); err != nil {
		t.Fatal(err)
	}
}
