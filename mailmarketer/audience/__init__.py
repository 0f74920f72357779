"""Audience: subscribers, mailing lists, subscriptions, the consent ledger, suppression,
import and export, data-subject requests (export, erasure) and segments.

Must not: send mail (campaigns and delivery do that) or know about forms (signup builds on this).

Invariants (DESIGN.md section 5):
- An address is unique per workspace, compared case-insensitively on the domain part
  (emails.normalise_email); syntax is validated, no DNS lookups.
- A subscription is unconfirmed, confirmed or unsubscribed, with the reason of its last change.
- Consent is an append-only ledger (ConsentRecord): grants, confirmations and withdrawals, each
  with the exact notice text (by hash) shown. Rows are never updated; erasure deletes them with
  the person.
- Suppression (a SHA-256 of the address) is checked by every path that adds or subscribes a
  person, and again at send time. It outlives erasure, so an erased person is never re-imported.
- Nothing that names a person (email, name, IP) goes into the audit log: subscribers appear there
  by their public uuid only, so erasure leaves the append-only log without personal data.
"""
