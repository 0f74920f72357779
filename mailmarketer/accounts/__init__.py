"""Accounts: workspaces (the tenants), staff users, memberships and roles, the permission
catalogue, invitations, API tokens, two-factor devices and the audit log.

Must not: know about subscribers, campaigns or any other domain (it is imported by all of them).

Invariants:
- Every request, job and query runs inside one workspace; a staff member who is not a member of
  a workspace gets 404 for everything in it, never its data.
- Every view and API route names the permission it needs (see permissions.py and access.py).
- The audit log is append-only: the model refuses updates and deletes, and on PostgreSQL a
  trigger does too.
- Secrets (TOTP seeds) are encrypted at rest; API tokens are stored as SHA-256 hashes.
- A workspace always keeps at least one owner.
"""
