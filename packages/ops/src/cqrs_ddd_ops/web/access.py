"""Who may act from the operations page: actions on, and the operator's token.

The page is read-only unless the application turns actions on *and* gives a
token. A request may then act when it carries that token, either as
``Authorization: Bearer <token>`` (scripts) or in the cookie the page's token
form sets (people): ``HttpOnly`` (no script reads it), ``SameSite=Strict``
(no other site's page can make the browser send it, so a form elsewhere
cannot act), ``Secure`` over HTTPS, and limited to the page's path. Tokens
are compared with :func:`secrets.compare_digest`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

TOKEN_COOKIE = "cqrs_ddd_ops_token"  # noqa: S105 - the cookie's name, not a secret
"""The cookie that keeps the token a person entered in the page's form."""

FLASH_COOKIE = "cqrs_ddd_ops_flash"
"""The cookie that carries what an action did to the page it redirects to."""

TOKEN_MAX_AGE = 8 * 3600
"""How long a browser keeps the token: a working day."""

MIN_TOKEN_LENGTH = 16
"""The shortest token accepted: anything shorter is guessable."""


class ActionRefusedError(Exception):
    """An action was refused: actions are off, or the request has no valid token."""


@dataclass(frozen=True)
class Access:
    """Whether actions are on, and the token they need."""

    actions: bool = False
    token: str | None = None

    def __post_init__(self) -> None:
        if self.actions and not self.token:
            raise ValueError("actions=True needs a token: pass token=<a long random secret>")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the operations token must be at least {MIN_TOKEN_LENGTH} characters")

    def matches(self, offered: str | None) -> bool:
        """Return whether ``offered`` is the token (in constant time)."""
        if not offered or self.token is None:
            return False
        return secrets.compare_digest(offered.encode(), self.token.encode())

    def offered_by(self, request: Request) -> str | None:
        """Return the token ``request`` carries: the bearer header's, else the cookie's."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return request.cookies.get(TOKEN_COOKIE)

    def holds_token(self, request: Request) -> bool:
        """Return whether ``request`` carries the right token (actions on or not)."""
        return self.matches(self.offered_by(request))

    def check(self, request: Request) -> None:
        """Return when ``request`` may act; raise :class:`ActionRefusedError` saying why not."""
        if not self.actions:
            raise ActionRefusedError(
                "refused: actions are off, this page is read-only (the application turns them"
                " on with actions=True and a token)"
            )
        offered = self.offered_by(request)
        if offered is None:
            raise ActionRefusedError(
                "refused: this action needs the operator token; enter it in the form at the"
                " top of the page, or send Authorization: Bearer <token>"
            )
        if not self.matches(offered):
            raise ActionRefusedError("refused: the operator token is wrong; nothing was done")
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            # a browser says where a request comes from: a form posted from another site
            # (a sibling subdomain too) carries the cookie, but is not the operator's
            raise ActionRefusedError(
                f"refused: this action came from another site ({site}); nothing was done"
            )


def keep_token(response: Response, request: Request, token: str, *, path: str) -> None:
    """Set the token cookie on ``response`` (see the module docstring for its flags)."""
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=TOKEN_MAX_AGE,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def forget_token(response: Response, request: Request, *, path: str) -> None:
    """Delete the token cookie."""
    response.delete_cookie(
        TOKEN_COOKIE,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def flash(response: Response, request: Request, message: str, *, path: str) -> None:
    """Have the next page ``response`` leads to show ``message`` (once)."""
    response.set_cookie(
        FLASH_COOKIE,
        quote(message[:500]),
        max_age=60,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def flashed(request: Request) -> str | None:
    """Return the message an action left for this page, if any."""
    value = request.cookies.get(FLASH_COOKIE)
    return unquote(value) if value else None


def clear_flash(response: Response, request: Request, *, path: str) -> None:
    """Delete the flash cookie, once its message is shown."""
    response.delete_cookie(
        FLASH_COOKIE,
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
