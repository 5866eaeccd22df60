"""The operator's web page: a router any FastAPI application can mount (the shop at ``/ops``).

Server-rendered HTML, with a little script of its own (served by the router:
no build step, nothing from another origin) that refreshes the overview.
Read-only unless the application turns actions on and gives a token; see
:func:`operations_router`.
"""

from __future__ import annotations

from cqrs_ddd_ops.web.router import (
    OperatedSystem,
    ReplayingRelay,
    SystemProvider,
    operations_router,
)

__all__ = ["OperatedSystem", "ReplayingRelay", "SystemProvider", "operations_router"]
