"""Read which option a constructor refused out of Python's ``TypeError`` wording, so that factories
(:func:`ir_env.regions.make_proposer`, :func:`policies.registry.make_planner`, the training scripts) can name
the option in their own error message instead of the class's ``__init__``."""

from __future__ import annotations

import re
from typing import Any


def unexpected_keyword(exc: BaseException) -> str | None:
    """The keyword a constructor refused in ``exc`` (Python's "unexpected keyword argument 'x'"), else None."""
    bad = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
    return bad.group(1) if bad else None


def repeated_keyword(exc: BaseException) -> str | None:
    """The keyword passed twice in ``exc`` (Python's "got multiple values for [keyword] argument 'x'": the factory
    sets it itself), else None."""
    bad = re.search(r"multiple values for (?:keyword )?argument '([^']+)'", str(exc))
    return bad.group(1) if bad else None


def non_number_option(exc: BaseException, kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """(key, text) of the option in ``kwargs`` whose text Python failed to read as a number in ``exc`` ("could not
    convert string to float: 'x'", "invalid literal for int() ...: 'x'"), else None."""
    bad = re.search(r"(?:could not convert string to float|invalid literal for int\(\) with base 10): '([^']*)'",
                    str(exc))
    if bad is None:
        return None
    named = [k for k, v in kwargs.items() if isinstance(v, str) and v == bad.group(1)]
    return (named[0], bad.group(1)) if named else None
