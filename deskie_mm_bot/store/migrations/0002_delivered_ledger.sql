-- Agents' answers on their way to Mattermost. Every Deskie message id is posted at most once:
-- the webhook and the reconciliation poll both write here, and only this table decides.
CREATE TABLE replies (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER UNIQUE,                 -- NULL until resolved (webhook without an id)
    case_id         INTEGER NOT NULL,
    conversation_id INTEGER,
    content_hash    TEXT    NOT NULL,
    body            TEXT    NOT NULL,               -- Markdown, ready to post
    attachments     TEXT    NOT NULL DEFAULT '[]',
    source          TEXT    NOT NULL,               -- webhook | reconcile
    state           TEXT    NOT NULL DEFAULT 'pending', -- pending | posting | posted | dropped
    parts_posted    INTEGER NOT NULL DEFAULT 0,
    post_ids        TEXT    NOT NULL DEFAULT '[]',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL DEFAULT 0,
    last_error      TEXT,
    received_at     REAL    NOT NULL,
    posted_at       REAL
);
CREATE INDEX replies_pending ON replies (state, id);
CREATE INDEX replies_by_case ON replies (case_id, content_hash);
