from mailmarketer.audience.tokens import make_unsubscribe_token, read_unsubscribe_token


def test_it_round_trips_ids():
    request = read_unsubscribe_token(make_unsubscribe_token(3, 42, 7))
    assert (request.workspace_id, request.subscriber_id, request.campaign_id) == (3, 42, 7)
    assert read_unsubscribe_token(make_unsubscribe_token(3, 42, None)).campaign_id is None


def test_it_rejects_any_altered_token():
    token = make_unsubscribe_token(3, 42, 7)
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert read_unsubscribe_token(flipped) is None or flipped == token


def test_it_rejects_tokens_signed_for_something_else():
    from django.core import signing

    assert read_unsubscribe_token(signing.dumps([3, 42, 7], salt="other")) is None
    assert read_unsubscribe_token("") is None
    assert read_unsubscribe_token("not a token") is None
