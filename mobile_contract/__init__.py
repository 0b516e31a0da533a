"""The wire contract between HeatCrew's server and its phone app (and the supervisor console).

Every request, response and action body is a msgspec Struct defined here. This package imports
nothing from ``backend``: the phone team, the reference client and the generated schemas use it
alone.
"""

from mobile_contract.auth import (
    DeviceInfo,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    TokenPair,
    UserSummary,
)
from mobile_contract.errors import ErrorBody, ErrorCode

__all__ = (
    "DeviceInfo",
    "ErrorBody",
    "ErrorCode",
    "LoginRequest",
    "LogoutRequest",
    "RefreshRequest",
    "TokenPair",
    "UserSummary",
)
