"""Numbers and true/false read from text, one way for every floor: the functions' environment (cappi.settings),
the stage config (infra/config.py) and local mode's variables (local/config.py).

Each reader returns the value or raises ValueError saying what the value must be (`must be a whole number, got
'3.5'`); the caller puts the setting's name in front.
"""

from __future__ import annotations

from typing import TypeVar

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_Number = TypeVar("_Number", int, float)


def read_bool(value: object) -> bool:
    """A bool as it is; text (or a number) that is one of TRUE_WORDS or FALSE_WORDS, in any case, blanks around
    ignored."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int | float):
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(f"must be true or false, got {value!r}")


def read_number(value: object, *, positive: bool = False, low: float | None = None, high: float | None = None) -> float:
    """`value` (text or a number, not a bool) as a float; `positive` and `low`/`high` (inclusive) bound it."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, got {value!r}") from None
    return _bounded(number, value, positive=positive, low=low, high=high)


def read_whole_number(
    value: object, *, positive: bool = False, low: float | None = None, high: float | None = None
) -> int:
    """`value` (text or a number written as a whole one: `3`, not `3.0`; not a bool) as an int, bounded as in
    read_number."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"must be a whole number, got {value!r}") from None
    return _bounded(number, value, positive=positive, low=low, high=high)


def _bounded(number: _Number, value: object, *, positive: bool, low: float | None, high: float | None) -> _Number:
    if positive and not number > 0:
        raise ValueError(f"must be positive, got {value!r}")
    if low is not None and high is not None and not low <= number <= high:
        raise ValueError(f"must be between {low:g} and {high:g}, got {value!r}")
    if low is not None and high is None and not low <= number:
        raise ValueError(f"must be at least {low:g}, got {value!r}")
    if high is not None and low is None and not number <= high:
        raise ValueError(f"must be at most {high:g}, got {value!r}")
    return number


def number_text(value: float) -> str:
    """How a number is written so that the readers read it back exactly: `30`, `0.01`, `2.5`, `1e+16`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return repr(float(value)).removesuffix(".0")
