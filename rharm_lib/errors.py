"""Errors raised for bad user input.

Every error a user can cause (a missing file, mismatched sizes, an unknown subset ...)
is a :class:`RharmInputError` whose message names the file, the list line or the
shapes. The CLI turns it into ``rharm: error: <message>`` and exit status 2, without a
traceback.
"""

__all__ = ["RharmInputError"]


class RharmInputError(ValueError):
    """Bad input given by the user; the message says what and where."""
