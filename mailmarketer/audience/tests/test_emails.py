import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given
from hypothesis import strategies as st

from mailmarketer.audience.emails import (
    InvalidEmail,
    fast_normalise,
    mask_addresses_in,
    mask_email,
    normalise_email,
    suppression_hash,
    suppression_hashes,
)

atext = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-.",
    min_size=1,
    max_size=30,
)
label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=3),
    st.from_regex(r"[A-Za-z]{2,6}", fullmatch=True),
)
addresses = st.builds(lambda local, dom: f"{local}@{dom}", atext, domain)


@given(addresses)
@example("John.Smith@Example.COM")
@example("a..b@example.com")
@example("0@00--0.AA")
@example(".a@example.com")
def test_it_agrees_with_email_validator_on_the_fast_path(address):
    try:
        expected = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    fast = fast_normalise(address)
    if fast is not None:
        # Everything the fast path accepts, email-validator accepts and normalises the same way.
        assert expected == fast == normalise_email(address)
    elif expected is None:
        with pytest.raises(InvalidEmail):
            normalise_email(address)


@given(addresses)
def test_it_is_idempotent(address):
    try:
        once = normalise_email(address)
    except InvalidEmail:
        return
    assert normalise_email(once) == once


@given(addresses)
def test_it_compares_domains_case_insensitively_and_local_parts_as_given(address):
    try:
        normal = normalise_email(address)
    except InvalidEmail:
        return
    local, _, dom = address.rpartition("@")
    assert normalise_email(f"  {local}@{dom.upper()} ") == normal
    assert normal.rpartition("@")[0] == local


def test_it_suppresses_every_case_variant_of_an_address():
    assert suppression_hash("John@example.com") == suppression_hash("john@example.com")


@given(st.lists(st.text(min_size=1, max_size=40)))
@example(["ANNA@Beispiel.DE", "jörg@bücher.example", "İstanbul@example.com", "ß@EXAMPLE.com"])
def test_it_hashes_a_batch_as_it_hashes_each_address(addresses):
    assert suppression_hashes(addresses) == [suppression_hash(a) for a in addresses]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("no-at-sign", "@"),
        ("two@@example.com", "@"),
        ("user@localhost", "after the @-sign"),
        ("a" * 65 + "@example.com", "longer than 64"),
        ("x@" + "a" * 250 + ".com", "longer than 254"),
    ],
)
def test_it_rejects_invalid_addresses_with_a_reason(raw, reason):
    with pytest.raises(InvalidEmail, match=reason):
        normalise_email(raw)


def test_it_accepts_internationalised_addresses():
    assert normalise_email("Jörg@BÜCHER.de") == "Jörg@bücher.de"


def test_it_masks_addresses():
    assert mask_email("john@example.com") == "j•••@example.com"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "550 5.1.1 <person1@acme-cust.test>: Recipient address rejected",
            "550 5.1.1 <p•••@acme-cust.test>: Recipient address rejected",
        ),
        ("User unknown: John.Doe+x@Example.COM; b@c.d", "User unknown: J•••@Example.COM; b•••@c.d"),
        ('<"john smith"@example.com> unknown', '<"•••@example.com> unknown'),
        ("250 2.0.0 Ok: queued as 4F2B", "250 2.0.0 Ok: queued as 4F2B"),
        ("", ""),
    ],
)
def test_it_masks_every_address_inside_free_text(text, masked):
    assert mask_addresses_in(text) == masked
