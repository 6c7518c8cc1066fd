package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestProxyStreamsGigabyte uploads and downloads 1 GiB through the
// gateway's MLflow proxy and checks the bytes arrive intact while the
// gateway's memory stays flat: nothing is buffered whole.
func TestProxyStreamsGigabyte(t *testing.T) {
	p := runningProject(t, "bigfiles")
	const size = 1 << 30
	url := panel.URL + "/projects/bigfiles/mlflow/api/2.0/mlflow-artifacts/artifacts/0/big/blob.bin"

	baseline := rssBytes(t)
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sample the resident set of this process, which hosts the gateway
		defer wg.Done()
		for {
			if v := rssBytes(t); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	up := &patternReader{left: size, h: sha256.New()}
	req, _ := http.NewRequest(http.MethodPut, url, up)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("uploading 1 GiB through the proxy: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload answered %d: %s", resp.StatusCode, body)
	}

	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	down := sha256.New()
	n, err := io.Copy(down, resp.Body)
	resp.Body.Close()
	close(stop)
	wg.Wait()
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
	}
	if hex.EncodeToString(down.Sum(nil)) != hex.EncodeToString(up.h.Sum(nil)) {
		t.Fatal("the downloaded gigabyte differs from the uploaded one")
	}
	growth := peak.Load() - baseline
	t.Logf("project %s: 1 GiB up and down; RSS baseline %d MiB, peak %d MiB", p.Name, baseline>>20, peak.Load()>>20)
	if growth > 128<<20 {
		t.Fatalf("the gateway's resident memory grew by %d MiB while streaming 1 GiB: something buffers", growth>>20)
	}
}

// patternReader yields size bytes of a repeating, position-dependent
// pattern quickly, hashing what it yields.
type patternReader struct {
	left int64
	off  int64
	h    hash.Hash
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	for i := range b {
		b[i] = byte((r.off + int64(i)) * 31 >> 3)
	}
	r.off += int64(len(b))
	r.left -= int64(len(b))
	r.h.Write(b)
	return len(b), nil
}

func rssBytes(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
			return kb << 10
		}
	}
	panic(fmt.Sprint("no VmRSS in /proc/self/status"))
}
