package proc

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Tail returns the last n lines of a log file, reading at most the last
// 256 KiB so a huge log never costs more than that.
func Tail(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening log: %w", err)
	}
	defer f.Close()
	const window = 256 << 10
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading log: %w", err)
	}
	off := info.Size() - window
	if off < 0 {
		off = 0
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, info.Size()-off))
	if err != nil {
		return "", fmt.Errorf("reading log: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // the first line of the window is likely cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}
