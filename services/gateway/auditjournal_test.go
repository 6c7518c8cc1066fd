package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// queueStandIn is a stand-in for the audit queue: it keeps what it is given,
// or refuses everything while failing is set.
type queueStandIn struct {
	mu      sync.Mutex
	ids     []string
	failing bool
}

func (r *queueStandIn) record(_ context.Context, e access.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		return errors.New("the queue is down")
	}
	r.ids = append(r.ids, e.ID)
	return nil
}

func (r *queueStandIn) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, journalPrefix+"*"+journalSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openJournal opens the journal in dir, moving entries to q.
func openJournal(t *testing.T, dir string, q *queueStandIn) *auditJournal {
	t.Helper()
	j, err := openAuditJournal(context.Background(), dir, q.record, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// Every journaled entry reaches the queue, across segments, and a segment
// whose entries all did is deleted.
func TestJournalMovesEntriesToTheQueue(t *testing.T) {
	dir := t.TempDir()
	var r queueStandIn
	ctx := context.Background()
	j := openJournal(t, dir, &r)
	j.segmentBytes = 1 << 10 // a few entries per segment
	var want []string
	for i := range 50 {
		e := access.Entry{ID: access.NewID(), Time: time.Now(), User: "ed", Method: "POST", Path: fmt.Sprintf("/projects/p/mlflow/api/2.0/mlflow/runs/log-metric?i=%d", i), Status: 200}
		if err := j.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	j.wait(wctx)
	cancel()
	got := r.got()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the queue got %d entries, want the %d journaled", len(got), len(want))
	}
	if left := segmentFiles(t, dir); len(left) != 1 {
		t.Fatalf("segments left with every entry queued: %v; want only the one being written", left)
	}
	j.close(ctx)
	if left := segmentFiles(t, dir); len(left) != 0 {
		t.Fatalf("segments left after a clean close: %v", left)
	}
}

// What a gateway journaled but did not queue before it was killed is
// queued by the next one when it opens the journal; a last line cut short
// by the kill (its call was never answered) is skipped.
func TestJournalReplaysWhatAKilledGatewayLeft(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	down := &queueStandIn{failing: true}
	j := openJournal(t, dir, down)
	var want []string
	for range 5 {
		e := access.Entry{ID: access.NewID(), Time: time.Now(), User: "ed", Method: "DELETE", Path: "/projects/p", Status: 204}
		if err := j.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}
	// Killed: no close. A half-written line is what a kill mid-append leaves.
	segs := segmentFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v; want one", segs)
	}
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"cut-short","user":"ed","meth`)
	f.Close()

	var r queueStandIn
	next := openJournal(t, dir, &r)
	defer next.close(ctx)
	got := r.got()
	if !slices.Equal(got, want) {
		t.Fatalf("the next gateway queued %v; want the killed one's entries %v, in order", got, want)
	}
	for _, s := range segmentFiles(t, dir) {
		if s == segs[0] {
			t.Fatalf("the replayed segment %s is still there", s)
		}
	}
}

// A segment the queue does not take at start stays, and the next start
// records it: nothing journaled is lost while the queue is down.
func TestJournalKeepsSegmentsTheQueueRefuses(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	down := &queueStandIn{failing: true}
	j := openJournal(t, dir, down)
	e := access.Entry{ID: access.NewID(), Time: time.Now(), User: "ed", Method: "POST", Path: "/projects", Status: 201}
	if err := j.Add(ctx, e); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	j.close(cctx)
	cancel()
	again, err := openAuditJournal(ctx, dir, down.record, quietLog())
	if err != nil {
		t.Fatalf("a journal whose old segment the queue refuses must still open: %v", err)
	}
	again.close(ctx)
	if segs := segmentFiles(t, dir); len(segs) != 1 {
		t.Fatalf("segments %v; want the refused one kept", segs)
	}
	var r queueStandIn
	next := openJournal(t, dir, &r)
	defer next.close(ctx)
	if got := r.got(); !slices.Equal(got, []string{e.ID}) {
		t.Fatalf("queued %v; want the entry the queue refused before", got)
	}
}

// An entry the queue refuses for a while is tried again until the queue
// takes it, without waiting for the next start.
func TestJournalRetriesWhileTheQueueIsDown(t *testing.T) {
	ctx := context.Background()
	q := &queueStandIn{failing: true}
	dir := t.TempDir()
	j := openJournal(t, dir, q)
	j.retryMin = 10 * time.Millisecond
	defer j.close(ctx)
	e := access.Entry{ID: access.NewID(), Time: time.Now(), User: "ed", Method: "PUT", Path: "/projects/p/run", Status: 200}
	if err := j.Add(ctx, e); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a few refused tries
	q.mu.Lock()
	q.failing = false
	q.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	j.wait(wctx)
	if got := q.got(); !slices.Equal(got, []string{e.ID}) {
		t.Fatalf("queued %v once the queue was back; want the refused entry", got)
	}
}
