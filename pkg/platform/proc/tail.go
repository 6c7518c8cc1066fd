package proc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// MaxLogLines bounds one logs call.
const MaxLogLines = 5000

// Logs is the tail of a supervised server's log, as the logs operations
// answer it.
type Logs struct {
	ID    string `json:"id"`
	Lines int    `json:"lines"`
	Log   string `json:"log"`
}

// ReadLogs returns the last n lines of the log at path for the entity
// id; a server that never started has no log yet, which is no error.
func ReadLogs(id, path string, n int) (Logs, error) {
	text, err := Tail(path, n)
	if errors.Is(err, fs.ErrNotExist) {
		return Logs{ID: id}, nil
	}
	if err != nil {
		return Logs{}, fmt.Errorf("reading log of %s: %w", id, err)
	}
	return LogsOf(id, text), nil
}

// LogsOf is the logs answer for text, the tail of the log of entity id
// however it was read (a file, a cluster's log API).
func LogsOf(id, text string) Logs {
	count := 0
	if text != "" {
		count = strings.Count(text, "\n") + 1
	}
	return Logs{ID: id, Lines: count, Log: text}
}
