"""Tracking: what people do after a message reaches them and on the business's own website.

Owns the `/t/` edge (the open pixel, the click redirect, the web snippet and its collect
endpoint), access-log import, the events they produce and the roll-ups every report reads. What
a person did is also written as facts per person through audience.facts.record_facts (the one
writer; audience owns facts because its segments read them).

Must not: send mail, change a subscription or a consent (audience owns them), or send anything
about a visit to any other host.

Invariants:
- A tracking token is signed; a click goes only to a URL stored for that campaign.
- A hit writes at most one event row and never answers with an error; a hit that got a response
  is not lost.
- Identified activity (linked to a person) only where that person's consent allows it; otherwise
  counts only.
- Anything captured from outside is length-capped, stored as text and shown escaped.
"""
