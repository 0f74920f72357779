"""Helpers for tests and benchmarks of delivery: a scriptable SMTP server (smtpd.py)."""
