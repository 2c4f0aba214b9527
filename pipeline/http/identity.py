"""Who is asking the web server, when document permissions are on.

Three ways, checked in this order, each off unless configured:

- a personal API token: ``[permissions] tokens_file`` names a TOML file of ``[tokens] "TOKEN" = "USER"``
  (keep it readable by the server's account only); ``Authorization: Bearer TOKEN`` is then that user;
- a reverse proxy that signs people in (OIDC, SAML) and passes the user in ``[permissions] trusted_header``,
  honoured only on requests that carry the server's own token (the proxy holds it; a browser does not);
- a signed media link: the user it was made for is part of what its signature covers.

Anyone else, the server's own token without the header included, is nobody in particular and sees what
everyone may read. The user's groups are read from the system at each request (``pipeline.permissions``).
"""

from __future__ import annotations

import hmac
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.config import Config

USER_PARAM = "u"  # the user a signed media link was made for
MIN_TOKEN_CHARS = 16  # for the server's token and every personal one
MIN_TOKEN_DISTINCT = 8  # "aaaaaaaaaaaaaaaa" is long but guessable
MAKE_TOKEN = "openssl rand -hex 16"


class IdentityConfigError(MmragError):
    """The tokens file cannot be used; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Identities:
    tokens: dict[str, str] = field(default_factory=dict)  # personal token -> user name
    header: str = ""

    def user(self, authorization: str, header_value: str | None, server_token: str | None) -> str | None:
        """The user a request speaks for (``None``: nobody in particular)."""
        given = _bearer(authorization)
        personal = self._owner(given)
        if personal is not None:
            return personal
        if self.header and header_value and server_token and hmac.compare_digest(given.encode(), server_token.encode()):
            return header_value.strip() or None
        return None

    def knows(self, authorization: str) -> bool:
        """Whether the request carries one of the personal tokens."""
        return self._owner(_bearer(authorization)) is not None

    def _owner(self, given: str) -> str | None:
        """The user whose personal token ``given`` is (compared in constant time)."""
        if given:
            for token, user in self.tokens.items():
                if hmac.compare_digest(given.encode(), token.encode()):
                    return user
        return None


def _bearer(authorization: str) -> str:
    return authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""


def load_identities(cfg: Config) -> Identities:
    """The personal tokens and the trusted header of ``cfg``; ``IdentityConfigError`` for a bad tokens file."""
    tokens: dict[str, str] = {}
    if cfg.permissions.tokens_file:
        path = Path(cfg.permissions.tokens_file).expanduser()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise IdentityConfigError(f"{path}: cannot read the tokens file ({e})") from e
        table = data.get("tokens", {})
        if not isinstance(table, dict) or not all(isinstance(v, str) and v.strip() for v in table.values()):
            raise IdentityConfigError(f'{path}: expected a [tokens] table of "TOKEN" = "USER" lines')
        for token, user in table.items():
            if len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_TOKEN_DISTINCT:
                raise IdentityConfigError(
                    f"{path}: the token of {user} is too weak ({MIN_TOKEN_CHARS}+ characters, "
                    f"{MIN_TOKEN_DISTINCT}+ different; make one with `openssl rand -hex 16`)"
                )
            tokens[token] = user.strip()
    return Identities(tokens, cfg.permissions.trusted_header.strip())
