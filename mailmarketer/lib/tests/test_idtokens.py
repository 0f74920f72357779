from hypothesis import given
from hypothesis import settings as settings_for_hypothesis
from hypothesis import strategies as st

from mailmarketer.lib.idtokens import make_token, read_token


def test_it_round_trips_the_ids():
    assert read_token("s", make_token("s", 1, 22, 333), 3) == (1, 22, 333)


def test_it_refuses_other_salts_counts_and_shapes():
    token = make_token("s", 1, 2, 3)
    assert read_token("t", token, 3) is None
    assert read_token("s", token, 2) is None
    for bad in ("", "1.2.3", "a.2.3.sig", "-1.2.3." + token.rsplit(".", 1)[1], token + "x"):
        assert read_token("s", bad, 3) is None


def test_it_accepts_fallback_keys_only_while_they_are_listed(settings):
    token = make_token("s", 5, 6)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-rotated-secret-key-" + "z" * 40
    assert read_token("s", token, 2) == (5, 6)
    settings.SECRET_KEY_FALLBACKS = []
    assert read_token("s", token, 2) is None


def test_the_signature_is_salted_hmacs_with_the_derived_key_kept(settings):
    # The derived key is cached per (salt, secret): tokens already sent must stay valid, and a
    # changed SECRET_KEY must change the signature at once.
    import base64

    from django.utils.crypto import salted_hmac

    def expected(salt, payload, secret):
        digest = salted_hmac(salt, payload, secret=secret, algorithm="sha256").digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    assert make_token("s", 7, 8) == f"7.8.{expected('s', '7.8', settings.SECRET_KEY)}"
    settings.SECRET_KEY = "another-secret-key-" + "q" * 40
    assert make_token("s", 7, 8) == f"7.8.{expected('s', '7.8', settings.SECRET_KEY)}"


@settings_for_hypothesis(max_examples=200, deadline=None)
@given(
    salt=st.text(max_size=40),
    ids=st.lists(st.integers(min_value=0, max_value=10**18), min_size=1, max_size=4),
    secret=st.text(min_size=1, max_size=90),
)
def test_the_signature_is_salted_hmacs_for_any_salt_ids_and_secret(salt, ids, secret):
    # The HMAC is computed from kept inner and outer states; it must be salted_hmac's exactly.
    import base64

    from django.utils.crypto import salted_hmac

    from mailmarketer.lib.idtokens import _signature

    payload = ".".join(map(str, ids))
    digest = salted_hmac(salt, payload, secret=secret, algorithm="sha256").digest()[:16]
    assert _signature(salt, payload, secret) == base64.urlsafe_b64encode(digest).decode().rstrip(
        "="
    )


def test_salted_hmac_sha256_is_djangos_digest(settings):
    from django.utils.crypto import salted_hmac

    from mailmarketer.lib.idtokens import salted_hmac_sha256

    for payload in ("", "1", "123456789-x", "é" * 80):
        assert (
            salted_hmac_sha256("a.salt", payload)
            == salted_hmac("a.salt", payload, algorithm="sha256").digest()
        )


@settings_for_hypothesis(max_examples=200)
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["s", "t", "mailmarketer.audience.manage"]),
            st.lists(st.integers(0, 10**18), min_size=1, max_size=4),
        ),
        max_size=4,
    )
)
def test_make_tokens_makes_what_make_token_makes(requests):
    # The send path's three tokens a message, made in one call, are make_token's.
    from django.conf import settings

    from mailmarketer.lib.idtokens import make_tokens

    pairs = [(salt, ".".join(map(str, ids))) for salt, ids in requests]
    expected = [make_token(salt, *ids) for salt, ids in requests]
    assert make_tokens(settings.SECRET_KEY, *pairs) == expected
