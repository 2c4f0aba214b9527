"""Who is asking: a person's principals, resolved from the system's user and group databases at query time.

With ``[permissions] enabled``, every search and answer is made for a set of principals (``user:NAME``,
``group:NAME`` for each group the user is in, ``PUBLIC``) and shows only files whose stored readers
(``mmrag.ingest.permissions``) let one of them read, with no deny entry for any. Group membership is read
at each query, so joining or leaving a group a file's readers name needs no re-index (a user kept by name
because a folder's group held them at ingest needs one: see ``mmrag.ingest.permissions``). A name the system
does not know gets ``PUBLIC`` only; a group lookup that fails is an error, never "everything".
"""

from __future__ import annotations

import getpass
import grp
import os
import pwd
from dataclasses import replace

from mmrag.ingest.errors import MmragError
from mmrag.ingest.permissions import PUBLIC
from mmrag.pipeline.config import Config
from mmrag.pipeline.filters import Filters


class IdentityError(MmragError):
    """Who is asking could not be worked out; the message says why."""


def current_user() -> str:
    """The name of the account running this process."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


def principals_for_user(name: str) -> frozenset[str]:
    """``user:NAME``, ``group:G`` for each of the user's groups (primary included) and ``PUBLIC``."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return frozenset({PUBLIC})  # nobody the system knows: what everyone may read, nothing more
    try:
        gids = os.getgrouplist(name, entry.pw_gid)
        groups = {f"group:{grp.getgrgid(g).gr_name}" for g in gids}
    except (OSError, KeyError) as e:
        raise IdentityError(f"cannot look up the groups of user {name!r} ({e}); refusing to guess") from e
    return frozenset({f"user:{name}", PUBLIC, *groups})


def asker(cfg: Config, as_user: str | None = None) -> frozenset[str] | None:
    """The principals a search is made for: ``as_user``'s, or this process's user's, when permissions are on;
    ``None`` (no permission filtering) when they are off."""
    if not cfg.permissions.enabled:
        if as_user:
            raise IdentityError(
                f"--as {as_user}: document permissions are off for this index (single-user mode); "
                "set [permissions] enabled = true and ingest again to record who may read each file"
            )
        return None
    return principals_for_user(as_user or current_user())


def scoped(cfg: Config, filters: Filters | None) -> Filters:
    """``filters`` made for someone: with permissions on and no principals given, this process's user."""
    filters = filters or Filters()
    if cfg.permissions.enabled and filters.principals is None:
        return replace(filters, principals=asker(cfg))
    return filters
