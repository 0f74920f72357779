"""The one rule for control characters in what people type (lib.text)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from mailmarketer.lib.text import nul_in, one_line_problem, refuse_controls, text_problem


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028"])
def test_it_refuses_every_control_character_in_one_line(char):
    assert one_line_problem(f"Ann{char}Lee")


@pytest.mark.parametrize("value", ["Ann Lee", "Zoë Ødegård", "山田 太郎", "", None, 42])
def test_it_accepts_ordinary_one_line_values(value):
    assert one_line_problem(value) is None


def test_it_keeps_tabs_and_line_breaks_in_text_but_not_nul():
    assert text_problem("1 Main Street\r\nSpringfield\tUSA") is None
    assert "a NUL character" in text_problem("1 Main\x00")
    assert "U+0007" in text_problem("1 Main\x07")


def test_it_names_each_field_at_fault():
    with pytest.raises(ValidationError) as info:
        refuse_controls({"name": "ok", "sender_name": "A\r\nB"}, {"postal_address": "x\x00"})
    assert set(info.value.message_dict) == {"sender_name", "postal_address"}
    assert "a carriage return (CR)" in info.value.message_dict["sender_name"][0]


def test_it_finds_nul_deep_in_json_values():
    assert nul_in({"a": [1, {"b": "x\x00"}]}, "attributes") == "attributes.a.1.b"
    assert nul_in({"a": ["x", 1.5, None]}, "attributes") is None
