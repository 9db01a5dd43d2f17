"""Masking secrets for display (``crmsync config-view``)."""

from __future__ import annotations


def mask_secret(value: str) -> str:
    """The PHP SDK's rule, so users recognise it: up to 8 chars all ``*``, else first 4 + ``*``… + last 4."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]
