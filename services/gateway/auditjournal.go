package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// The audit journal makes a call's entry durable before the answer at the
// cost of one local file append, where the queue's acknowledgement
// (auditqueue.go) costs a round trip through NATS and JetStream's store:
// a few hundred microseconds on every write on a small machine. A worker
// moves journaled entries to the queue after the answer. The journal is
// cut into segments; a segment whose entries have all reached the queue
// is deleted, and the segments a gateway killed mid-way left behind are
// recorded again when the next one opens the journal (the queue and the
// audit collection drop an entry they already have, by id).
//
// Like JetStream's own store, an append survives the process, not the
// machine: neither syncs every write to disk.

const (
	journalPrefix = "audit-"
	journalSuffix = ".jsonl"
	// journalSegmentBytes is when a segment is closed and a new one begun.
	journalSegmentBytes = 4 << 20
	// journalBacklog is how many entries may wait for the worker; beyond
	// it a call records its entry itself, so a slow queue slows writes
	// instead of filling memory.
	journalBacklog = 4096
	// journalRetryMax caps the wait between tries of an entry the queue
	// refused.
	journalRetryMax = 30 * time.Second
)

type auditJournal struct {
	dir          string
	record       func(context.Context, access.Entry) error
	log          *slog.Logger
	segmentBytes int64         // journalSegmentBytes; tests make it small
	retryMin     time.Duration // the first wait before an entry is tried again

	mu      sync.Mutex
	f       *os.File
	seg     int         // the segment being written
	size    int64       // its size
	pending map[int]int // entries of a segment not yet in the queue
	closed  bool

	work chan journaled
	stop chan struct{} // closed when close gives up waiting for the worker
	done chan struct{} // closed when the worker has returned
	idle *sync.Cond    // signalled when an entry reaches the queue
}

type journaled struct {
	e   access.Entry
	seg int
}

// openAuditJournal records again what earlier gateways left in dir (a
// segment the queue does not take stays for the next start), then opens a
// new segment and starts the worker that moves entries to record.
func openAuditJournal(ctx context.Context, dir string, record func(context.Context, access.Entry) error, log *slog.Logger) (*auditJournal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the audit journal folder %s: %w", dir, err)
	}
	j := &auditJournal{dir: dir, record: record, log: log, segmentBytes: journalSegmentBytes, retryMin: time.Second,
		pending: map[int]int{}, work: make(chan journaled, journalBacklog), stop: make(chan struct{}), done: make(chan struct{})}
	j.idle = sync.NewCond(&j.mu)
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	for _, n := range segs {
		j.seg = max(j.seg, n)
		if err := j.replay(ctx, n); err != nil {
			// Kept for the next start; this one serves all the same.
			log.Warn("the audit queue did not take a stopped gateway's journaled entries; the next start tries again", "err", err)
		}
	}
	if err := j.begin(j.seg + 1); err != nil {
		return nil, err
	}
	go j.run()
	return j, nil
}

// segments lists the journal's segment numbers, oldest first.
func (j *auditJournal) segments() ([]int, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("reading the audit journal %s: %w", j.dir, err)
	}
	var segs []int
	for _, e := range ents {
		num, ok := strings.CutPrefix(e.Name(), journalPrefix)
		if num, ok = strings.CutSuffix(num, journalSuffix); ok {
			if n, err := strconv.Atoi(num); err == nil {
				segs = append(segs, n)
			}
		}
	}
	sort.Ints(segs)
	return segs, nil
}

func (j *auditJournal) path(n int) string {
	return filepath.Join(j.dir, fmt.Sprintf("%s%09d%s", journalPrefix, n, journalSuffix))
}

// replay records every entry of segment n and deletes it. A line cut
// short by a crash is skipped: its call was never answered.
func (j *auditJournal) replay(ctx context.Context, n int) error {
	f, err := os.Open(j.path(n))
	if err != nil {
		return fmt.Errorf("opening audit journal segment: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	count := 0
	for sc.Scan() {
		var e access.Entry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.ID == "" {
			continue
		}
		if err := j.record(ctx, e); err != nil {
			return fmt.Errorf("recording audit entry %s from the journal %s: %w", e.ID, j.path(n), err)
		}
		count++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading audit journal segment %s: %w", j.path(n), err)
	}
	if count > 0 {
		j.log.Info("recorded audit entries a stopped gateway had journaled", "entries", count, "segment", j.path(n))
	}
	return os.Remove(j.path(n))
}

// begin opens segment n for appending. Called with mu held (or before the
// journal is shared).
func (j *auditJournal) begin(n int) error {
	f, err := os.OpenFile(j.path(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("opening audit journal segment: %w", err)
	}
	j.f, j.seg, j.size = f, n, 0
	return nil
}

// Add makes e durable in the journal and hands it to the worker.
func (j *auditJournal) Add(ctx context.Context, e access.Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit entry: %w", err)
	}
	line = append(line, '\n')
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return j.record(ctx, e) // shutting down: straight to the queue
	}
	if _, err := j.f.Write(line); err != nil {
		j.mu.Unlock()
		// The journal cannot take it (a full disk): the queue's own
		// acknowledgement keeps the promise instead.
		if rerr := j.record(ctx, e); rerr != nil {
			return errors.Join(fmt.Errorf("journaling audit entry: %w", err), rerr)
		}
		return nil
	}
	seg := j.seg
	j.pending[seg]++
	j.size += int64(len(line))
	if j.size >= j.segmentBytes {
		j.rotate()
	}
	// Sent under the lock: close closes work under it too.
	sent := false
	select {
	case j.work <- journaled{e, seg}:
		sent = true
	default:
	}
	j.mu.Unlock()
	if sent {
		return nil
	}
	if err := j.record(ctx, e); err != nil {
		return err // stays counted: the next gateway records it
	}
	j.recorded(seg)
	return nil
}

// rotate closes the segment being written and begins the next. Called
// with mu held. If the next cannot be opened, the old one goes on.
func (j *auditJournal) rotate() {
	old, oldSeg := j.f, j.seg
	if err := j.begin(j.seg + 1); err != nil {
		j.log.Warn("rotating the audit journal", "err", err)
		return
	}
	_ = old.Close()
	if j.pending[oldSeg] == 0 {
		j.forget(oldSeg)
	}
}

// recorded counts one entry of segment seg as in the queue; a closed
// segment with nothing left is deleted.
func (j *auditJournal) recorded(seg int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending[seg]--
	if j.pending[seg] == 0 && seg != j.seg {
		j.forget(seg)
	}
	j.idle.Broadcast()
}

// forget deletes segment seg. Called with mu held.
func (j *auditJournal) forget(seg int) {
	delete(j.pending, seg)
	if err := os.Remove(j.path(seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
		j.log.Warn("deleting an audit journal segment", "err", err)
	}
}

// run moves journaled entries to the queue, in order. An entry the queue
// does not take is tried again, backing off, until it does or the journal
// closes; it stays counted meanwhile, so its segment stays for the next
// gateway if this one stops first.
func (j *auditJournal) run() {
	defer close(j.done)
	for w := range j.work {
		for wait := j.retryMin; ; wait = min(2*wait, journalRetryMax) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := j.record(ctx, w.e)
			cancel()
			if err == nil {
				j.recorded(w.seg)
				break
			}
			if wait == j.retryMin {
				j.log.Error("moving a journaled audit entry to the queue; trying again", "id", w.e.ID, "err", err)
			}
			select {
			case <-j.stop:
				return // the rest stays journaled for the next gateway
			case <-time.After(wait):
			}
		}
	}
}

// wait returns when every entry journaled so far is in the queue, or ctx ends.
func (j *auditJournal) wait(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		j.mu.Lock()
		j.idle.Broadcast()
		j.mu.Unlock()
	})
	defer stop()
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.outstanding() > 0 && ctx.Err() == nil {
		j.idle.Wait()
	}
}

// outstanding counts entries not yet in the queue. Called with mu held.
func (j *auditJournal) outstanding() int {
	n := 0
	for _, c := range j.pending {
		n += c
	}
	return n
}

// close lets the worker move what it holds (at most until ctx ends), and
// deletes the segment being written if nothing of it is left.
func (j *auditJournal) close(ctx context.Context) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	j.closed = true
	close(j.work)
	j.mu.Unlock()
	select {
	case <-j.done:
	case <-ctx.Done():
		close(j.stop)
		<-j.done // a record in hand is bounded by its own timeout
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.f.Close()
	if j.pending[j.seg] == 0 {
		j.forget(j.seg)
	}
}
