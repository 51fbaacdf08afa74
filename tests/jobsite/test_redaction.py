"""Secret values are redacted as whole tokens (jobsite.redaction.redact_values),
everywhere text from a run or an outside service is kept or shown."""
import pytest

from jobsite.redaction import MIN_SECRET_CHARS, redact_values, short_secret_names
from scheduling import runlog
from vision_pipeline.external import scrub

KEY = "k3y-Value_0042"


@pytest.mark.parametrize(("text", "expected"), [
    ("Backend API returned 401", "Backend API returned 401"),
    (f"token {KEY} refused", "token *** refused"),
    (f"Bearer {KEY}", "Bearer ***"),
    (f"?key={KEY}&page=2", "?key=***&page=2"),
    (f'{{"key": "{KEY}"}}', '{"key": "***"}'),
    (f"({KEY}).", "(***)."),
    (f"{KEY}{KEY}", f"{KEY}{KEY}"),  # one longer token, not two of the key
    (f"x{KEY}", f"x{KEY}"),
    (f"{KEY}9", f"{KEY}9"),
    (f"key%3D{KEY.replace('-', '%2D')}", f"key%3D{KEY.replace('-', '%2D')}"),  # not its URL-encoded form
])
def test_whole_tokens_only(text, expected):
    assert redact_values(text, [KEY]) == expected


def test_a_short_value_never_cuts_a_word():
    assert redact_values("Backend send end", ["end"]) == "Backend send ***"


def test_the_url_encoded_form_is_redacted_too():
    secret = "a/b+c=d12"
    assert redact_values("url?x=a%2Fb%2Bc%3Dd12&y=1", [secret]) == "url?x=***&y=1"


def test_the_longest_value_wins_where_one_contains_another():
    assert redact_values("abcdefgh-ijkl", ["abcdefgh", "abcdefgh-ijkl"]) == "***"


@pytest.mark.parametrize("redactor", [
    lambda text, secret: runlog.redact(text, [secret]),
    lambda text, secret: scrub(text, secret),
])
def test_run_logs_and_vision_errors_keep_words_around_a_secret(redactor):
    assert redactor("Backend failed", "end") == "Backend failed"
    assert redactor(f"Backend failed with {KEY}", KEY) == "Backend failed with ***"


def test_short_secret_names():
    assert short_secret_names({"a": "x" * (MIN_SECRET_CHARS - 1), "b": "x" * MIN_SECRET_CHARS, "c": ""}) == ["a"]
