//go:build !linux

package media

import (
	"errors"
	"time"
)

// gridAlarm is Linux's (a timerfd); elsewhere the worker's Go timer alone
// wakes it.
type gridAlarm struct{}

func newGridAlarm() (*gridAlarm, error) { return nil, errors.New("no timerfd") }

func (a *gridAlarm) set(time.Duration) error { return nil }

func (a *gridAlarm) close() {}
