"""Small framework-light helpers shared by every domain.

Nothing here imports from another Mail Marketer package. Things that live here: strict settings
parsing from the environment, encryption of secrets at rest, the system-mail module, the outbox,
the worker loop, and request helpers.
"""
