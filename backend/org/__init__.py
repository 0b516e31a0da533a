"""The heating company itself: its identity, zone and (later) stations and areas."""

from backend.org.models import Company

__all__ = ("Company",)
