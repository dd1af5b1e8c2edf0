"""What DynamoDB bills for a write or a read: item sizes by its published rules, write units and read units.

Computed rather than read back because moto (and so local mode and the tests) does not report consumed capacity
truthfully; on AWS the store also sums what DynamoDB reports, for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def _number_size(text: str) -> int:
    # DynamoDB stores about two significant digits per byte plus one byte; the sign costs one more.
    negative = text.startswith("-")
    mantissa = text.lstrip("+-").lower().partition("e")[0]
    digits = mantissa.replace(".", "").lstrip("0").rstrip("0")
    if "." in mantissa:
        # Zeros after the decimal point but before the first significant digit are not significant.
        digits = digits.lstrip("0")
    return (len(digits) + 1) // 2 + 1 + (1 if negative else 0)


def _value_size(value: Mapping[str, Any]) -> int:
    (kind, payload), *rest = value.items()
    if rest:
        raise ValueError(f"an attribute value has exactly one type, got {sorted(value)}")
    if kind == "S":
        return len(payload.encode())
    if kind == "B":
        return len(payload)
    if kind == "N":
        return _number_size(payload)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in payload)
    if kind == "BS":
        return sum(len(b) for b in payload)
    if kind == "NS":
        return sum(_number_size(n) for n in payload)
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in payload)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in payload.items())
    raise ValueError(f"unknown attribute value type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Size in bytes of an item in the low-level attribute-value format, by DynamoDB's published rules.

    Each attribute costs its name's UTF-8 length plus its value: S its UTF-8 bytes, B its bytes, N about one byte
    per two significant digits plus one, BOOL/NULL one, L/M three plus one per element (plus names for M).
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """Write units for one item write of `size` bytes: one per started KB, at least one."""
    return max(1, math.ceil(size / 1024))


READ_UNIT_BYTES = 4096


def read_units(sizes: Iterable[int], *, consistent: bool = False) -> float:
    """Read units for items of `sizes` bytes read one by one (GetItem, each item of a BatchGetItem, or one Query's
    summed size): one per started 4 KB per item, at least one (an absent item too), half when eventually
    consistent."""
    units = sum(max(1, math.ceil(size / READ_UNIT_BYTES)) for size in sizes)
    return units if consistent else units / 2
