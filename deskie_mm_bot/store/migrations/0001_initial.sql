-- Conversations, the inbound outbox and cursors: what the bot must remember across restarts.

-- One row per Deskie case the bot relays. A conversation key (a DM, a channel, or a thread root)
-- can own several rows over time: when a case is closed the next message opens a new row.
CREATE TABLE conversations (
    id               INTEGER PRIMARY KEY,
    conv_key         TEXT    NOT NULL,
    channel_id       TEXT    NOT NULL,
    reply_root_id    TEXT    NOT NULL DEFAULT '',
    user_custom_id   TEXT    NOT NULL,
    user_full_name   TEXT    NOT NULL,
    case_id          INTEGER,
    case_number      TEXT,
    deskie_user_id   INTEGER,
    state            TEXT    NOT NULL DEFAULT 'active',   -- active | ended | closed
    last_activity_at REAL    NOT NULL,
    last_speaker     TEXT    NOT NULL DEFAULT 'customer', -- customer | agent
    last_message_id  INTEGER NOT NULL DEFAULT 0,          -- newest Deskie message id known on the case
    case_updated_at  TEXT,
    created_at       REAL    NOT NULL
);
CREATE INDEX conversations_by_key ON conversations (conv_key, id);
CREATE UNIQUE INDEX conversations_by_case ON conversations (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX conversations_by_state ON conversations (state, last_activity_at);

-- Mattermost posts waiting to reach Deskie, written before the post is acknowledged.
CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY,
    post_id        TEXT    NOT NULL UNIQUE,
    conv_key       TEXT    NOT NULL,
    channel_id     TEXT    NOT NULL,
    reply_root_id  TEXT    NOT NULL DEFAULT '',
    user_custom_id TEXT    NOT NULL,
    user_full_name TEXT    NOT NULL,
    author         TEXT    NOT NULL,
    show_author    INTEGER NOT NULL DEFAULT 0,
    kind           TEXT    NOT NULL DEFAULT 'message',    -- message | note
    text           TEXT    NOT NULL,
    file_ids       TEXT    NOT NULL DEFAULT '[]',
    posted_at      REAL    NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'pending',    -- pending | inflight | sent | failed
    batch_id       INTEGER,
    created_at     REAL    NOT NULL
);
CREATE INDEX outbox_pending ON outbox (state, conv_key, id);

-- A write to Deskie that may or may not have happened: checked against Deskie before it is repeated.
CREATE TABLE batches (
    id              INTEGER PRIMARY KEY,
    conv_key        TEXT    NOT NULL,
    conversation_id INTEGER,
    op              TEXT    NOT NULL,                     -- create_case | add_message | add_note
    content         TEXT    NOT NULL,
    since_message_id INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'inflight',  -- inflight | done
    started_at      REAL    NOT NULL
);

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE errors (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    source  TEXT NOT NULL,
    message TEXT NOT NULL
);
