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
    ("http://u:PASSWORD@host", "http://u:***@host"),
    # the last '@' before the host ends the userinfo
    ("postgresql://u:pa@ss@host/db", "postgresql://u:***@host/db"),
    ("at postgresql://u:p@s@s@host:5432/db: refused", "at postgresql://u:***@host:5432/db: refused"),
    # a password in the query string
    ("postgresql://u@host/db?password=hunter2", "postgresql://u@host/db?password=***"),
    ("postgresql://u@host/db?sslmode=require&password=hunter2&x=1",
     "postgresql://u@host/db?sslmode=require&password=***&x=1"),
    ("cannot open postgresql://u@h/db?password=hunter2: refused",
     "cannot open postgresql://u@h/db?password=***: refused"),
    ("mysql://u@h/db?PASSWD=x1", "mysql://u@h/db?PASSWD=***"),
    # inside JSON and quotes: the quote ends the URL
    ('{"uri": "http://u:pw@h:5000", "who": "x@y"}', '{"uri": "http://u:***@h:5000", "who": "x@y"}'),
    ("'http://u:pw@h' and 'a@b'", "'http://u:***@h' and 'a@b'"),
])
def test_passwords_are_replaced(raw: str, shown: str) -> None:
    assert redact_url(raw) == shown
    assert redact_url(shown) == shown  # idempotent


@pytest.mark.parametrize("clean", ["postgresql://cnnexp@db/optuna", "cnnexp-optuna.journal",
                                   "http://host:5000/path@x", "sqlite:///mlflow.db", "",
                                   "http://host/api?run=a@b", "user@example.com wrote: x:y@z",
                                   "postgresql://u@host/db?sslmode=require"])
def test_text_without_a_password_is_unchanged(clean: str) -> None:
    assert redact_url(clean) == clean


def test_unreachable_storage_is_bad_input_without_the_password() -> None:
    with pytest.raises(BadInput) as exc:
        open_storage("postgresql://cnnexp:hunter2@127.0.0.1:1/optuna")
    message = str(exc.value)
    assert "hunter2" not in message and "cnnexp:***@127.0.0.1:1/optuna" in message
    assert "\n" not in message


def _password_server(monkeypatch: pytest.MonkeyPatch, workdir) -> str:
    """MLFLOW_TRACKING_URI with a password, on a store that works: a real SQLite store behind
    a URL form MLflow accepts (the password is in a query parameter SQLite ignores)."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}?password=hunter2"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_no_command_prints_the_tracking_password(cli, workdir, monkeypatch) -> None:
    """diagnose, train --resume, report (and its HTML) and --json output name the store
    without its password."""
    _password_server(monkeypatch, workdir)
    out = cli("train", "train.epochs=1", "data.subset=200", "--json")
    assert out.exit_code == 0, out.stderr
    run_id = out.json()["run_id"]
    seen = [out.stdout + out.stderr]
    for args in (("diagnose", "0123456789abcdef0123456789abcdef"),
                 ("train", "--resume", "0123456789abcdef0123456789abcdef"),
                 ("train", "--resume", run_id, "--json"),
                 ("report", run_id, "--out", "r.html", "--json")):
        res = cli(*args)
        seen.append(res.stdout + res.stderr)
    seen.append((workdir / "r.html").read_text())
    assert "password=***" in seen[1] and "password=***" in seen[-1]
    assert not [text for text in seen if "hunter2" in text]


@pytest.mark.slow
def test_tracking_server_password_never_shows(cli, workdir, monkeypatch) -> None:
    """MLFLOW_TRACKING_URI=http://u:PASSWORD@host on a real `mlflow server`: train, diagnose,
    train --resume, ui and report (and its HTML) never show the password."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.servers import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
         "--artifacts-destination", str(workdir / "artifacts"), "--workers", "1"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "no mlflow server"
                time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://cnnexp:hunter2@127.0.0.1:{port}")
        out = cli("train", "train.epochs=1", "data.subset=200", "--json")
        assert out.exit_code == 0, out.stderr
        run_id = out.json()["run_id"]
        results = [out] + [cli(*args) for args in (
            ("diagnose", run_id[:8], "--json"), ("diagnose", "0123456789abcdef"),
            ("train", "--resume", "0123456789abcdef"), ("train", "--resume", run_id),
            ("ui",), ("report", run_id, "--out", "r.html", "--json"))]
        assert [r.exit_code for r in results] == [0, 0, 2, 2, 2, 0, 0], \
            [r.stderr for r in results]
        assert "http://cnnexp:***@127.0.0.1" in results[2].stderr + results[5].stderr
        html = (workdir / "r.html").read_text()
        assert "http://cnnexp:***@127.0.0.1" in html
        assert not [r for r in results if "hunter2" in r.stdout + r.stderr]
        assert "hunter2" not in html
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


# Passwords SQLAlchemy, psycopg and MLflow's HTTP client accept, which no pattern over free text
# can delimit: the URL a command was given is parsed, and its password hidden wherever quoted.
ODD = ["pa/ss42", "pa#ss42", "pa?ss42", "pa'ss42", "pa)ss42", 'pa"ss42', "pa ss42"]


@pytest.mark.parametrize("pw", ODD)
def test_a_given_url_hides_an_odd_password_everywhere(pw: str) -> None:
    from cnnexp.redact import passwords, remember

    url = f"postgresql://u:{pw}@127.0.0.1:1/optuna"
    assert pw in passwords(url)
    remember(url)
    for text in (url, f"cannot open --storage {url}: refused", f'{{"storage": "{url}"}}',
                 f"<code>{__import__('html').escape(url)}</code>"):
        shown = redact_url(text)
        assert pw not in shown and __import__("html").escape(pw) not in shown, shown
        assert "127.0.0.1:1/optuna" in shown  # the rest of the URL stays readable


def test_http_password_is_read_as_urllib_reads_it() -> None:
    from cnnexp.redact import passwords

    assert passwords("http://u:ss'42@127.0.0.1:5000/api") == {"ss'42"}
    assert passwords("http://u:a@b@host:5000") >= {"a@b"}  # the last '@' ends the userinfo
    assert passwords("sqlite:////tmp/x.db") == set() and passwords("/tmp/journal") == set()
    assert passwords("postgresql://u@h/db?password=x%2Fy&sslmode=require") == {"x/y"}


def test_odd_storage_password_never_printed(cli, workdir) -> None:
    pw = "pa/ss 42'"
    res = cli("search", "--storage", f"postgresql://u:{pw}@127.0.0.1:1/optuna", "--json")
    assert res.exit_code == 2
    assert pw not in res.stdout + res.stderr and "pa/ss" not in res.stdout + res.stderr
    assert "127.0.0.1:1/optuna" in res.stderr  # still says which storage failed


def test_odd_tracking_password_never_printed(cli, workdir, monkeypatch) -> None:
    pw = "ss'4 2#x"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://u:{pw}@127.0.0.1:1")
    res = cli("train", "train.epochs=1", "data.subset=100", "--json")
    assert res.exit_code != 0
    assert pw not in res.stdout + res.stderr and "ss'4" not in res.stdout + res.stderr
