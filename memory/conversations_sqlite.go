package memory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const conversationSchema = `
CREATE TABLE IF NOT EXISTS conversations (
	id           TEXT PRIMARY KEY,
	agent        TEXT    NOT NULL,
	instructions TEXT    NOT NULL,
	created      INTEGER NOT NULL, -- unix nanoseconds
	updated      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_age ON conversations (updated);
CREATE TABLE IF NOT EXISTS conversation_turns (
	conversation TEXT    NOT NULL,
	at           INTEGER NOT NULL,
	role         TEXT    NOT NULL,
	text         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS conversation_turns_by_id ON conversation_turns (conversation, at);`

func (s *SQLite) CreateConversation(ctx context.Context, c Conversation) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO conversations (id, agent, instructions, created, updated) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.Agent, c.Instructions, c.Created.UnixNano(), c.Updated.UnixNano())
	if err != nil {
		return fmt.Errorf("conversation create: %w", err)
	}
	return nil
}

func (s *SQLite) Conversation(ctx context.Context, id string) (Conversation, []Turn, error) {
	c := Conversation{ID: id}
	var created, updated int64
	err := s.db.QueryRowContext(ctx, `SELECT agent, instructions, created, updated FROM conversations WHERE id = ?`, id).
		Scan(&c.Agent, &c.Instructions, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, nil, ErrNoConversation
	}
	if err != nil {
		return Conversation{}, nil, fmt.Errorf("conversation %s: %w", id, err)
	}
	c.Created, c.Updated = time.Unix(0, created), time.Unix(0, updated)
	rows, err := s.db.QueryContext(ctx, `
SELECT role, text, at FROM (
	SELECT rowid, role, text, at FROM conversation_turns WHERE conversation = ? ORDER BY at DESC, rowid DESC LIMIT ?
) ORDER BY at, rowid`, id, MaxConversationTurns)
	if err != nil {
		return Conversation{}, nil, fmt.Errorf("conversation %s: %w", id, err)
	}
	defer rows.Close()
	var turns []Turn
	for rows.Next() {
		t := Turn{CallID: id}
		var at int64
		if err := rows.Scan(&t.Role, &t.Text, &at); err != nil {
			return Conversation{}, nil, fmt.Errorf("conversation %s: %w", id, err)
		}
		t.At = time.Unix(0, at)
		turns = append(turns, t)
	}
	if err := rows.Err(); err != nil {
		return Conversation{}, nil, fmt.Errorf("conversation %s: %w", id, err)
	}
	return c, turns, nil
}

func (s *SQLite) AppendConversation(ctx context.Context, id string, turns []Turn, at time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("conversation append: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op once committed
	res, err := tx.ExecContext(ctx, `UPDATE conversations SET updated = ? WHERE id = ?`, at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("conversation append: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoConversation
	}
	for _, t := range turns {
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversation_turns (conversation, at, role, text) VALUES (?, ?, ?, ?)`,
			id, t.At.UnixNano(), t.Role, t.Text); err != nil {
			return fmt.Errorf("conversation append: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("conversation append: %w", err)
	}
	return nil
}

func (s *SQLite) DeleteConversation(ctx context.Context, id string) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("conversation delete: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op once committed
	res, err := tx.ExecContext(ctx, `DELETE FROM conversations WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("conversation delete: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM conversation_turns WHERE conversation = ?`, id); err != nil {
		return false, fmt.Errorf("conversation delete: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("conversation delete: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func (s *SQLite) ExpireConversations(ctx context.Context, before time.Time) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("conversation expire: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op once committed
	if _, err := tx.ExecContext(ctx, `DELETE FROM conversation_turns WHERE conversation IN (SELECT id FROM conversations WHERE updated <= ?)`,
		before.UnixNano()); err != nil {
		return 0, fmt.Errorf("conversation expire: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM conversations WHERE updated <= ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("conversation expire: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("conversation expire: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
