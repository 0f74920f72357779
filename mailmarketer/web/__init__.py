"""Web: the UI shell. Base templates, navigation, the dashboard, the outbox page, health checks
and the vendored static assets (no CDN: the browser talks to this server only).

Must not: hold domain logic; pages read through each domain's queries and write through its
actions.
"""
