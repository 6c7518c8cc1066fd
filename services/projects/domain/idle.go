package domain

import (
	"fmt"
	"strings"
	"time"
)

// StatusSleeping is a project that should run (desired state running)
// whose server was stopped because nobody used it; the first request
// through the panel wakes it.
const StatusSleeping Status = "sleeping"

// IdleRule is the rule an idle timeout must satisfy, in words for errors.
const IdleRule = "idleTimeout is a duration such as 90s, 15m or 2h between 1s and 720h, or 0 to never sleep, or empty to use MLPANEL_IDLE_TIMEOUT"

// MaxIdleTimeout bounds an idle timeout: longer is "never" in practice,
// and 0 says that plainly.
const MaxIdleTimeout = 720 * time.Hour

// MaxIdleTimeoutLen bounds the text, as the API document does.
const MaxIdleTimeoutLen = 32

// ParseIdleTimeout checks a project's idle timeout and returns it; ok is
// false for "" (the panel's default applies).
func ParseIdleTimeout(s string) (d time.Duration, ok bool, err error) {
	if len(s) > MaxIdleTimeoutLen {
		return 0, false, fmt.Errorf("invalid idleTimeout: longer than %d characters: %s", MaxIdleTimeoutLen, IdleRule)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, nil
	}
	if s == "0" {
		return 0, true, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil || (d != 0 && d < time.Second) || d < 0 || d > MaxIdleTimeout {
		return 0, false, fmt.Errorf("invalid idleTimeout %q: %s", s, IdleRule)
	}
	return d, true, nil
}
