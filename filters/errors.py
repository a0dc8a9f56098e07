"""Kept for existing imports: the error type lives in the ground floor (``core.errors``)."""
from core.errors import InputError  # noqa: F401
