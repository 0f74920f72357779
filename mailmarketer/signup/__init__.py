"""Signup: what the people on the other side see. For now the unsubscribe pages every marketing
message links to (RFC 8058 one-click and a page for people); later the forms and their notices,
double opt-in, webinars, resources, evaluation requests and the preference centre.

Must not: send campaigns or write the delivery ledger; change anything on a GET (mail scanners
and link previews fetch every link in a message); show a visitor more of a person than a masked
address.

Invariants:
- Every change goes through audience.actions (do_unsubscribe writes the withdrawal consent
  records, the suppression and the audit row naming the person by uuid only).
- A link's authority is its signed token (audience.tokens): altered, truncated or forged, it
  changes nothing; valid, it keeps working however old it is.
- Lookups are scoped to the workspace the token names: a token never reaches a person, list or
  campaign of another workspace.
- Public pages set no cookie, run no script, send no referrer and ask not to be indexed or cached.
"""
