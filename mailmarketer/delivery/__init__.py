"""Delivery: everything about sending a campaign. The status machine and its one writer
(status.py), launch, scheduling, pause, resume, cancel and retry as staff ask for them
(campaign_actions.py, scheduler.py), test sends and transactional messages (transactional.py),
the per-recipient ledger, the planner and the sending worker duties, senders (SMTP relays, the
outbox), rate limits across workers, DKIM, VERP return paths, bounces and complaints; and the
pages that show and change a campaign's sending (the list with progress, the campaign page and
its buttons, the ledger and its CSV export).

Must not: decide what a message says (campaigns renders it) or who is in an audience (audience
answers that); this package moves rendered messages and records what happened.

Invariants (DESIGN.md section 5, "Delivery"):
- One ledger row per (campaign, subscriber), unique: the record of who was sent what, when,
  through which server, with which SMTP reply.
- Workers claim rows with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one atomic
  conditional UPDATE). A row is marked sent right after the relay accepted it; expired leases go
  back to the queue. So a kill -9 never skips anyone, and duplicates are limited to the messages
  in flight at the kill; a graceful stop, pause or resume gives neither gaps nor duplicates.
- Suppression, unsubscription and blocklisting are checked again at send time.
- A campaign is finished only when every one of its rows is final.
- A campaign's status is written only by status.set_campaign_status, following TRANSITIONS,
  with an audit row naming the actor (staff, the API, the scheduler, the engine).
"""
