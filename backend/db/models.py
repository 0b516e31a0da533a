"""Imports every table module so that ``SQLModel.metadata`` is complete (migrations, tests)."""

from sqlmodel import SQLModel

from backend.audit import models as audit_models
from backend.auth import models as auth_models
from backend.console import models as console_models
from backend.evidence import models as evidence_models
from backend.org import models as org_models
from backend.reports import models as report_models
from backend.review import models as review_models
from backend.sync import models as sync_models
from backend.work_orders import models as work_order_models

__all__ = (
    "audit_models",
    "auth_models",
    "console_models",
    "evidence_models",
    "metadata",
    "org_models",
    "report_models",
    "review_models",
    "sync_models",
    "work_order_models",
)

metadata = SQLModel.metadata
