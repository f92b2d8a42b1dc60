-- The Mattermost posts that carry agents' answers: a customer replying in the thread of one of them
-- is talking to the chat, mention or not.
CREATE TABLE answer_posts (
    post_id         TEXT PRIMARY KEY,
    conversation_id INTEGER NOT NULL
);
