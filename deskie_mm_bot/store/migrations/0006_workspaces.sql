-- Several Mattermost workspaces in one process: each chat belongs to one. '' is the single
-- `mattermost:` form, so a store written before keeps working untouched. (Cursors carry their
-- workspace in their names: 'mm.channel.<id>' for '', 'mm.ws.<name>.channel.<id>' otherwise.)
ALTER TABLE conversations ADD COLUMN workspace TEXT NOT NULL DEFAULT '';
CREATE INDEX conversations_workspace_state ON conversations (workspace, state);
