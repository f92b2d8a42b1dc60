-- Who wrote an answer, and the name it is posted under: chosen once, before its first post, so a
-- restart posts the same parts (a name learnt later must not shift where a long answer is split).
ALTER TABLE replies ADD COLUMN staff_id INTEGER;
ALTER TABLE replies ADD COLUMN agent_name TEXT;      -- NULL: not chosen yet; '': posted without a name

-- Status reactions on a chat's first customer post (:eyes: once answered, :white_check_mark: once its
-- case is closed in Deskie). One row per chat; each reaction is wanted, then done (or given up), once.
CREATE TABLE chat_reactions (
    conversation_id INTEGER PRIMARY KEY,
    channel_id      TEXT    NOT NULL,
    post_id         TEXT    NOT NULL,
    eyes            TEXT    NOT NULL DEFAULT 'no',   -- no | wanted | done | failed
    closed_mark     TEXT    NOT NULL DEFAULT 'no',   -- no | wanted | done | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL DEFAULT 0
);
CREATE INDEX chat_reactions_wanted ON chat_reactions (eyes, closed_mark);
