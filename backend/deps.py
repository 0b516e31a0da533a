"""Names of the dependencies every handler may ask for (marked explicitly, as Litestar 3 wants)."""

from typing import TypeAlias

from litestar.di import NamedDependency

from backend.auth.principal import Principal
from backend.context import AppContext

__all__ = ("Caller", "Ctx")

Ctx: TypeAlias = NamedDependency[AppContext]
"""The application context: settings, database, blob store, clock."""
Caller: TypeAlias = NamedDependency[Principal]
"""The authenticated user and device of this request."""
