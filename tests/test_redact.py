"""Credentials never reach logs: storage/tracking URL passwords are redacted."""

from __future__ import annotations

import pytest

from cnnexp.errors import BadInput
from cnnexp.redact import redact_url
from cnnexp.search.storage import open_storage


@pytest.mark.parametrize(("raw", "shown"), [
    ("postgresql://cnnexp:s3cret@db:5432/optuna", "postgresql://cnnexp:***@db:5432/optuna"),
    ("postgresql+psycopg://u:p%40ss@h/db?sslmode=require", "postgresql+psycopg://u:***@h/db?sslmode=require"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("error: cannot open mysql://root:pw@10.0.0.1/x: refused", "error: cannot open mysql://root:***@10.0.0.1/x: refused"),
    ("http://a:b@h:5000 then sqlite:////tmp/x.db", "http://a:***@h:5000 then sqlite:////tmp/x.db"),
])
def test_passwords_are_replaced(raw: str, shown: str) -> None:
    assert redact_url(raw) == shown
    assert redact_url(shown) == shown  # idempotent


@pytest.mark.parametrize("clean", ["postgresql://cnnexp@db/optuna", "cnnexp-optuna.journal",
                                   "http://host:5000/path@x", "sqlite:///mlflow.db", ""])
def test_text_without_a_password_is_unchanged(clean: str) -> None:
    assert redact_url(clean) == clean


def test_unreachable_storage_is_bad_input_without_the_password() -> None:
    with pytest.raises(BadInput) as exc:
        open_storage("postgresql://cnnexp:hunter2@127.0.0.1:1/optuna")
    message = str(exc.value)
    assert "hunter2" not in message and "cnnexp:***@127.0.0.1:1/optuna" in message
    assert "\n" not in message
