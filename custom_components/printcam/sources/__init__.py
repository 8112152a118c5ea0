"""Printer camera sources: one module per printer family, no Home Assistant."""

from __future__ import annotations

from .base import (
    CameraPortClosed,
    CannotConnect,
    CertificateMismatch,
    FrameSource,
    InvalidAuth,
    InvalidSerial,
    LiveviewDisabled,
    NotMjpeg,
    ProtocolError,
    SourceError,
    SourceEvents,
    SourceStats,
    SourceTimeout,
)

__all__ = [
    "CameraPortClosed",
    "CannotConnect",
    "CertificateMismatch",
    "FrameSource",
    "InvalidAuth",
    "InvalidSerial",
    "LiveviewDisabled",
    "NotMjpeg",
    "ProtocolError",
    "SourceError",
    "SourceEvents",
    "SourceStats",
    "SourceTimeout",
]
