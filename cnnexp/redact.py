"""Keep credentials out of logs: a storage or tracking URL's password becomes `***` before it is
printed, put in JSON, or logged to MLflow (`postgresql://user:***@host/db`)."""

from __future__ import annotations

import re

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


def redact_url(text: str) -> str:
    """Every `scheme://user:password@` and `?password=` in `text` with the secret replaced by
    `***`. Works on a bare URL and on messages that quote one; text without credentials is
    returned unchanged."""
    text = _USERINFO.sub(lambda m: m.group("head") + "***", text)
    return _QUERY_SECRET.sub(lambda m: m.group("head") + "***", text)
