"""Audience: subscribers, mailing lists, subscriptions, the consent ledger, suppression,
import and export, data-subject requests (export, erasure) and segments.

Must not: send mail (campaigns and delivery do that) or know about forms (signup builds on this).

Invariants (DESIGN.md section 5):
- An address is unique per workspace, compared case-insensitively as a whole (Subscriber.
  email_key, emails.email_key) and kept as typed, the domain lower-cased and IDNA-normalised
  (emails.normalise_email), for display and sending; syntax is validated, no DNS lookups.
- Subscribing has one writer, subscribing.subscribe_people, which every path calls (staff,
  API, import, forms): it decides suppressed / blocklisted / new / kept unsubscribed /
  resubscribed / upgraded, and writes the memberships with their consent records. Nobody who
  unsubscribed is subscribed again without a new grant from the person or staff.
- A subscription is unconfirmed, confirmed or unsubscribed, with the reason of its last change.
- Consent is an append-only ledger (ConsentRecord): grants, confirmations and withdrawals, each
  with the exact notice text (by hash) shown. Rows are never updated; erasure deletes them with
  the person.
- Suppression (a SHA-256 of the address) is checked by every path that adds or subscribes a
  person, and again at send time. It outlives erasure, so an erased person is never re-imported.
- Nothing that names a person (email, name, IP) goes into the audit log: subscribers appear there
  by their public uuid only, so erasure leaves the append-only log without personal data.
"""
