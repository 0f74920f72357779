"""Campaigns: layouts, campaigns and their content, rendering and personalisation, the links of
each campaign, scheduling and the campaign status machine.

Must not: talk to SMTP servers or write the delivery ledger (delivery does); know how a message
travels.

Invariants:
- Templates are rendered in Jinja2's ImmutableSandboxedEnvironment with plain data only (never
  models, settings or callables of ours), under a time and size cap. A template that cannot render
  is refused when the campaign is saved, with the line, not discovered mid-send.
- Everything that is the same for every recipient (layout, CSS inlining, Markdown, link
  extraction) is done once per campaign; per recipient only what differs.
- Status changes follow TRANSITIONS in models.py and go through actions.do_*_campaign.
- A marketing campaign cannot start while its workspace has no postal address.
"""
