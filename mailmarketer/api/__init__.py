"""API: the REST API at /api/v1/ (Django Ninja, OpenAPI at /api/v1/openapi.json and
/api/v1/docs), thin over the domains' actions and queries.

Must not: hold domain logic. Each route names its permission (`require(...)`); bearer tokens are
scoped to one workspace and one role; errors share one JSON shape ({"code", "message",
"errors"?}).
"""
