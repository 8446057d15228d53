"""Taking the one error out of the exception groups that nurseries raise."""

from __future__ import annotations

__all__ = ["sole_exception"]


def sole_exception(error: BaseException) -> BaseException:
    """The error inside ``error`` when it is a group (or a group of groups) of one.

    A task that fails in a nursery ends it with that error wrapped in an
    :exc:`ExceptionGroup`, once per nursery it crosses; callers of a
    blocking entry point expect the error itself. A group of several
    errors, or any other exception, is returned as it is.
    """
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
