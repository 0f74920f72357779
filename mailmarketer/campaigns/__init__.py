"""Campaigns: the content side. Layouts, campaigns as documents and their content, attachments,
rendering and personalisation, the links of each campaign, the preview and the public archive
("view in browser").

Must not: send, or write anything about sending: a campaign's status, its launch, scheduling,
the ledger and its pages belong to delivery, which imports this package; this package imports
nothing from delivery (the layering contract in pyproject.toml checks it). The status is only
read here, to refuse editing a campaign that is no longer a draft or scheduled.

Invariants:
- Templates are rendered in Jinja2's ImmutableSandboxedEnvironment with plain data only (never
  models, settings or callables of ours), under a time and size cap. A template that cannot render
  is refused when the campaign is saved, with the line, not discovered mid-send.
- Everything that is the same for every recipient (layout, CSS inlining, Markdown, link
  extraction) is done once per campaign; per recipient only what differs.
- A refusal names the field it is about (ActionError.field), for the forms and the API.
"""
