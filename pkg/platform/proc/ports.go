package proc

import (
	"fmt"
	"net"
	"strconv"
)

// PortFree reports whether nothing listens on host:port right now.
func PortFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Range is an inclusive range of TCP ports.
type Range struct{ Lo, Hi int }

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Lo, r.Hi) }

// ParseRange reads "5000-5099".
func ParseRange(s string) (Range, error) {
	var r Range
	if _, err := fmt.Sscanf(s, "%d-%d", &r.Lo, &r.Hi); err != nil {
		return Range{}, fmt.Errorf("port range %q: want LO-HI, e.g. 5000-5099", s)
	}
	if r.Lo < 1 || r.Hi > 65535 || r.Lo > r.Hi {
		return Range{}, fmt.Errorf("port range %q: want 1 <= LO <= HI <= 65535", s)
	}
	return r, nil
}
