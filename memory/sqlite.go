package memory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure Go: no cgo, so the image stays static
)

// SQLite is the embedded store: one file, no server, the default.
type SQLite struct{ db *sql.DB }

// OpenSQLite opens (creating it if need be) the store in the file at path.
func OpenSQLite(path string) (*SQLite, error) {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("memory store %s: %w", path, err)
		}
	}
	// WAL lets a sweep or another call's write proceed beside reads;
	// busy_timeout makes a writer wait its turn instead of failing.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(2000)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("memory store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	const schema = `
CREATE TABLE IF NOT EXISTS turns (
	caller  TEXT    NOT NULL,
	at      INTEGER NOT NULL, -- unix nanoseconds
	call_id TEXT    NOT NULL,
	role    TEXT    NOT NULL,
	text    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_caller ON turns (caller, at);
CREATE INDEX IF NOT EXISTS turns_by_age ON turns (at);`
	if _, err := db.Exec(schema + conversationSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("memory store %s: %s (%w)", path, whyNotOpened(path, err), err)
	}
	return &SQLite{db: db}, nil
}

// whyNotOpened says, in words, why SQLite could not open path: its own
// messages ("unable to open database file") say neither what nor why.
func whyNotOpened(path string, err error) string {
	if fi, statErr := os.Stat(path); statErr == nil && fi.IsDir() {
		return "memory.path names a directory; name a file in it"
	}
	if strings.Contains(err.Error(), "not a database") {
		return "the file is not an SQLite database (memory.path names another file)"
	}
	dir := filepath.Dir(path)
	if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
		probe, err := os.CreateTemp(dir, ".voicebot-probe-*")
		if err != nil {
			return "voicebot may not create files in " + dir
		}
		probe.Close()
		os.Remove(probe.Name())
	} else if f, err := os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return "voicebot may not read and write the file"
	} else {
		f.Close()
	}
	return "SQLite could not open it"
}

func (s *SQLite) Recent(ctx context.Context, caller string, since time.Time, max int) ([]Turn, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT role, text, at, call_id FROM (
	SELECT rowid, role, text, at, call_id FROM turns
	WHERE caller = ? AND at >= ? ORDER BY at DESC, rowid DESC LIMIT ?
) ORDER BY at, rowid`, caller, since.UnixNano(), max)
	if err != nil {
		return nil, fmt.Errorf("memory recent: %w", err)
	}
	defer rows.Close()
	var out []Turn
	for rows.Next() {
		var t Turn
		var at int64
		if err := rows.Scan(&t.Role, &t.Text, &at, &t.CallID); err != nil {
			return nil, fmt.Errorf("memory recent: %w", err)
		}
		t.At = time.Unix(0, at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memory recent: %w", err)
	}
	return out, nil
}

func (s *SQLite) Append(ctx context.Context, caller string, turns []Turn) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("memory append: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op once committed
	for _, t := range turns {
		if _, err := tx.ExecContext(ctx, `INSERT INTO turns (caller, at, call_id, role, text) VALUES (?, ?, ?, ?, ?)`,
			caller, t.At.UnixNano(), t.CallID, t.Role, t.Text); err != nil {
			return fmt.Errorf("memory append: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("memory append: %w", err)
	}
	return nil
}

func (s *SQLite) Forget(ctx context.Context, caller string) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM turns WHERE caller = ?`, caller)
	if err != nil {
		return 0, fmt.Errorf("memory forget: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (s *SQLite) Expire(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM turns WHERE at < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("memory expire: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (s *SQLite) Close() error { return s.db.Close() }
