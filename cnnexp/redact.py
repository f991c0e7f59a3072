"""Keep credentials out of logs: a storage or tracking URL's password becomes `***` before it is
printed, put in JSON, or logged to MLflow (`postgresql://user:***@host/db`).

Two layers. The URLs this process was given (`--storage`, `MLFLOW_TRACKING_URI`) are parsed the
way their consumers parse them (SQLAlchemy: the password runs to the first '@'; urllib, as
MLflow's HTTP client uses it: the userinfo ends at the last '@' of the authority), and each
password found is hidden wherever it appears, in any of the forms a message may quote it
(as typed, percent-decoded or -encoded, HTML-escaped). A password may hold '/', '#', '?',
quotes or spaces, which no pattern over free text can tell from the text around it. Then a
pattern catches `scheme://user:password@host` and `?password=` in other URLs a message quotes.
"""

from __future__ import annotations

import html
import os
import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit

# Characters that end a URL inside a message (quotes and brackets around a quoted URL).
_END = r"\s\"'<>()\[\]{}\\"
# scheme://user:password@host. The userinfo ends at the *last* '@' before the host, so
# `u:pa@ss@host` hides `pa@ss`; a password holds no unencoded '/', '?' or '#' (RFC 3986), so
# http://host:5000/a@b is left alone.
_USERINFO = re.compile(
    rf"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#{_END}]*:)(?P<pw>[^/?#{_END}]+)"
    rf"(?=@[^@/?#{_END}]*(?:[/?#{_END}]|$))")
# ?password=... in a query string (libpq, SQLAlchemy and most drivers accept it there); a
# ':', ',' or '.' that ends it is taken as the message's punctuation
_QUERY_SECRET = re.compile(
    rf"(?P<head>[?&;](?:password|passwd|pwd|pass|sslpassword|secret|token|access_token|api_key"
    rf"|apikey)=)(?P<pw>[^&#{_END}]+?)(?=[:,.]?(?:[&#{_END}]|$))", re.IGNORECASE)


_SECRET_KEYS = {"password", "passwd", "pwd", "pass", "sslpassword", "secret", "token",
                "access_token", "api_key", "apikey"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SQLALCHEMY_USERINFO = re.compile(r"^[^:/]*:(?P<pw>[^@]*)@")
MIN_KNOWN = 4  # shorter passwords are left to the pattern: hiding every "pw" would mangle text
_known: set[str] = set()


def passwords(url: str | None) -> set[str]:
    """The secrets a URL carries, as each consumer would read them (empty for a plain path)."""
    if not url or not _SCHEME.match(url):
        return set()
    rest = url[_SCHEME.match(url).end():]
    found = set()
    sqlalchemy = _SQLALCHEMY_USERINFO.match(rest)
    if sqlalchemy:
        pw = sqlalchemy.group("pw")
        # a URL parser that ends the authority at '/', '?' or '#' quotes the password's head
        # as part of a host name in its error ("Host 'u:pa' contains...")
        found |= {pw, re.split(r"[/?#]", pw, maxsplit=1)[0]}
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        found.add(authority.rpartition("@")[0].partition(":")[2])
    try:
        query = urlsplit(url).query
    except ValueError:  # an unbalanced '[' in the host
        query = ""
    found |= {v for k, v in parse_qsl(query) if k.lower() in _SECRET_KEYS}
    return {pw for pw in found if pw}


def remember(url: str | None) -> None:
    """Hide this URL's passwords from now on, whatever text later quotes them."""
    for pw in passwords(url):
        for form in (pw, unquote(pw), quote(pw, safe=""), html.escape(pw), html.escape(pw, False)):
            if len(form) >= MIN_KNOWN:
                _known.add(form)


def redact_url(text: str) -> str:
    """Every known password (see `remember`; the tracking URI's always) and every
    `scheme://user:password@` and `?password=` in `text` with the secret replaced by `***`.
    Works on a bare URL and on messages that quote one; text without credentials is returned
    unchanged."""
    remember(os.environ.get("MLFLOW_TRACKING_URI"))
    for secret in sorted(_known, key=len, reverse=True):  # a longer form before its parts
        text = text.replace(secret, "***")
    text = _USERINFO.sub(lambda m: m.group("head") + "***", text)
    return _QUERY_SECRET.sub(lambda m: m.group("head") + "***", text)
