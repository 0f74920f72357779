"""Test helpers of the signup package for any package's tests: a solved ALTCHA proof of work
for a form, made as the widget would make it (so that a test can post a form while the
workspace requires proof of work, as every workspace does by default)."""

from __future__ import annotations

import base64
import json

from altcha import solve_challenge_v1

from .altcha import ALGORITHM, make_challenge

EASY = 1_000  # a difficulty a test solves in a millisecond or two


def altcha_payload(form, *, maxnumber: int = EASY, expires=None) -> str:
    """The `altcha` field value of a solved challenge of `form` (base64 JSON)."""
    challenge = make_challenge(form, maxnumber=maxnumber, expires=expires)
    solution = solve_challenge_v1(
        challenge["challenge"], challenge["salt"], ALGORITHM, maxnumber, 0
    )
    assert solution is not None
    payload = {
        "algorithm": ALGORITHM,
        "challenge": challenge["challenge"],
        "number": solution.number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
    }
    return base64.b64encode(json.dumps(payload).encode()).decode()
