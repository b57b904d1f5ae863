"""URLs fit to print, and credentials taken out of URLs.

A URL may carry ``user:password@`` (docker-compose used to put Elasticsearch's password into
``RTC_SEARCH_URL``). Every place that prints or logs a URL passes it through :func:`redact_url`;
:func:`split_credentials` moves userinfo out of a URL setting into its own username and
``SecretStr`` password settings (``rtcrypto/config.py``), so the URL a setting holds is clean.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

# scheme://userinfo@ : the fallback for text urlsplit refuses (a bad IPv6 literal, a bad port)
_USERINFO = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def redact_url(url: str | None) -> str:
    """``url`` without its userinfo: ``http://u:p@host:9200/x`` -> ``http://host:9200/x``.

    None becomes ``""``; a URL without userinfo comes back unchanged.
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<head>", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def url_userinfo(url: str) -> tuple[str | None, str | None]:
    """(user name, password) of ``url``, percent-decoded; None where absent."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, None
    if "@" not in parts.netloc:
        return None, None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return username, password


def split_credentials(
    name: str, url: str, username: str | None, password: SecretStr | None
) -> tuple[str, str | None, SecretStr | None]:
    """(URL without userinfo, user name, password) of the setting ``name`` (``search``, ...).

    Userinfo in the URL fills the separate settings; a URL that names other credentials than
    ``RTC_<NAME>_USERNAME`` / ``_PASSWORD`` raises ``ValueError`` naming the settings.
    """
    url_user, url_password = url_userinfo(url)
    prefix = f"RTC_{name.upper()}"
    if url_user is not None:
        if username is not None and username != url_user:
            raise ValueError(
                f"{prefix}_URL names user {url_user!r} and {prefix}_USERNAME says {username!r}: "
                f"keep one (better: no user:password in {prefix}_URL)"
            )
        username = url_user
    if url_password is not None:
        if password is not None and password.get_secret_value() != url_password:
            raise ValueError(
                f"{prefix}_URL carries a password and {prefix}_PASSWORD another: keep one "
                f"(better: {prefix}_PASSWORD, and no user:password in {prefix}_URL)"
            )
        password = SecretStr(url_password)
    return redact_url(url), username, password
