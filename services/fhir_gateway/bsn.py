"""The BSN elfproef (eleven test): weights 9..2 for the first eight digits, -1 for the last."""

from __future__ import annotations


def is_valid_bsn(value: str) -> bool:
    if len(value) != 9 or not value.isdigit():
        return False
    digits = [int(d) for d in value]
    total = sum(d * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - digits[8]
    return total % 11 == 0 and value != "000000000"
