"""Text formats, pure functions and nothing of either protocol's clients: Mattermost Markdown to the HTML
a helpdesk shows (`markdown`), helpdesk HTML back to Markdown and Mattermost's post limit (`formatting`).
Like the model, it imports nothing from the package, so the edges and the core may all use it."""
