package archive

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkWriteMemory streams a project with 256 MiB of artifacts and
// reports the bytes allocated per archived byte: a streaming writer stays
// far below 1 however large the project (the gateway's memory is flat).
func BenchmarkWriteMemory(b *testing.B) {
	dir := b.TempDir()
	arts := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(arts, 0o755); err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var size int64
	for i := 0; i < 4; i++ {
		f, err := os.Create(filepath.Join(arts, "part"+string(rune('a'+i))))
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 64; j++ {
			_, _ = rand.Read(chunk)
			n, _ := f.Write(chunk)
			size += int64(n)
		}
		f.Close()
	}
	db := filepath.Join(dir, "mlflow.db")
	_ = os.WriteFile(db, []byte("db"), 0o644)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := Write(io.Discard, Project{Meta: []byte("{}"), DB: db, Artifacts: arts}); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(size), "alloc-bytes/archived-byte")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB-allocated")
		b.ReportMetric(float64(size)/(1<<20), "MiB-archived")
	}
}
