"""Printer camera sources: one module per printer family, no Home Assistant."""

from __future__ import annotations

from .base import (
    CannotConnect,
    FrameSource,
    InvalidAuth,
    NotMjpeg,
    ProtocolError,
    SourceError,
    SourceEvents,
    SourceStats,
    SourceTimeout,
)

__all__ = [
    "CannotConnect",
    "FrameSource",
    "InvalidAuth",
    "NotMjpeg",
    "ProtocolError",
    "SourceError",
    "SourceEvents",
    "SourceStats",
    "SourceTimeout",
]
