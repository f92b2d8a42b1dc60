-- What the bot wrote itself, so that reconciliation does not read a case again for its own writes.
-- own_updated_at: the case's Deskie `updated_at` as the bot's last write left it.
-- verify_after:   a case skipped for that reason is read once later (bounded per poll), since
--                 Deskie's one-second times cannot prove nobody else wrote in the same second.
ALTER TABLE conversations ADD COLUMN own_updated_at TEXT;
ALTER TABLE conversations ADD COLUMN verify_after REAL;
