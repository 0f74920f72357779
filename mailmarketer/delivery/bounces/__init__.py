"""Bounces and complaints that arrive after the SMTP session: three ways in, one classifier.

- `classify.py` reads one message (bytes from anywhere: hostile) and says what it is: a hard or
  soft bounce (RFC 3464 DSNs by their status codes, anything else through flufl.bounce, GNU
  Mailman's detectors), a complaint (an RFC 5965 ARF report), an auto-reply (RFC 3834, vacation
  messages) or a delay warning (both ignored), or unknown. It never raises.
- `apply.py` matches a classified message to its ledger row and acts on it, in one transaction:
  the VERP token (an HMAC only we can make) first, then our Message-ID quoted in it, then the
  address (acted on only from a verified provider webhook: anyone can send a DSN). Hard bounces
  and complaints unsubscribe and suppress (audience.bulk_withdraw: the rules of audience's
  actions, set-based); soft bounces are counted. A batch has the outcomes of its reports
  applied one after the other.
- `receiver.py` is the SMTP receiver (`mailmarketer bouncer`), which stores a message (one
  INSERT, group-committed) before it answers 250, and `applier.py` its child process that
  applies the stored messages in batches: whatever it accepted is applied, even after a kill,
  and whatever it did not the MTA retries.

What it must never do: suppress anyone on a message that carries no valid token (or our quoted
Message-ID) unless a provider's signature was verified, or act on a row of another workspace
than the channel it came through.
"""
