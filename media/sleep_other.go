//go:build !linux

package media

import (
	"errors"
	"time"
)

// gridTimer is Linux's timerfd; elsewhere the worker waits on a Go timer.
type gridTimer struct{}

func newGridTimer() (*gridTimer, error) { return nil, errors.New("no timerfd") }

func (t *gridTimer) sleep(time.Duration) error { return nil }

func (t *gridTimer) close() {}
