"""Subscriber import: CSV (plain, .gz, or one CSV inside a .zip) into the audience, as a
background job with progress, a per-row error report, and resumption after a crash.

- reading.py: opening, decompressing, decoding and parsing the file; inspection (encoding,
  delimiter, header, preview) and the full check the job runs before it changes anything.
- mapping.py: which column is the email, the name, an attribute, or ignored.
- seen.py: the index of addresses already met in the file (duplicates), kept on disk.
- report.py: the error report (CSV, formula-neutralised).
- store.py: the bulk SQL of the hot path (COPY on PostgreSQL, executemany on SQLite), which
  audience.subscribing also writes through for every other path.
- pipeline.py: one chunk of rows, one transaction: validate, deduplicate (by the lower-cased
  address), then subscribe through audience.subscribing.subscribe_people (or update, or
  blocklist) in bulk.
- jobs.py: the do_* actions (create, start, cancel, resume, delete) and the job (run_import).
- queries.py: reads, including import_progress() for the UI and the API.

Invariants:
- A file that cannot be read as a whole (encoding, damaged archive, not CSV, no header, no
  email column) gets one error and changes nothing: the job reads the whole file once before
  it writes anything.
- Memory does not grow with the file: rows stream in chunks, and addresses already met are
  looked up in an on-disk index, not a set in memory.
- One transaction per chunk, recording the rows done: a crash leaves whole chunks and a resumed
  job goes on after the last one. Re-running a file changes nothing the second time.
- An import never adds or subscribes a suppressed address, never resubscribes an unsubscribed
  member and never subscribes a blocklisted subscriber; each such row is reported.
- The audit log gets one row when an import is created and one when it finishes, with counts
  only: no addresses, no names.
"""
