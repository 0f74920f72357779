"""Delivery: the per-recipient ledger, the planner and the sending worker duties, senders (SMTP
relays, the outbox), rate limits across workers, retries, DKIM, VERP return paths, bounces and
complaints.

Must not: decide what a message says (campaigns renders it) or who is in an audience (audience
answers that); this package only moves rendered messages and records what happened.

Invariants (DESIGN.md section 5, "Delivery"):
- One ledger row per (campaign, subscriber), unique: the record of who was sent what, when,
  through which server, with which SMTP reply.
- Workers claim rows with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one atomic
  conditional UPDATE). A row is marked sent right after the relay accepted it; expired leases go
  back to the queue. So a kill -9 never skips anyone, and duplicates are limited to the messages
  in flight at the kill; a graceful stop, pause or resume gives neither gaps nor duplicates.
- Suppression, unsubscription and blocklisting are checked again at send time.
- A campaign is finished only when every one of its rows is final.
"""
