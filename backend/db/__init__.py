"""Database access: engine, sessions, column types and migrations."""

from backend.db.engine import Database, make_engine
from backend.db.types import UTCDateTime

__all__ = ("Database", "UTCDateTime", "make_engine")
