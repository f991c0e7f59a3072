"""Keep credentials out of logs: a storage or tracking URL's password becomes `***` before it is
printed, put in JSON, or logged to MLflow (`postgresql://user:***@host/db`)."""

from __future__ import annotations

import re

# scheme://user:password@  (RFC 3986: a password holds no unencoded "@" or "/", so a path
# like http://host:5000/a@b is left alone)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)(?P<pw>[^@/\s]+)(?=@)")


def redact_url(text: str) -> str:
    """Every `scheme://user:password@` in `text` with the password replaced by `***`.
    Works on a bare URL and on messages that quote one; text without credentials is returned
    unchanged."""
    return _USERINFO.sub(lambda m: m.group("head") + "***", text)
