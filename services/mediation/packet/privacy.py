"""Masking of the rider's identity in a packet (PIPL: share no more than the purpose needs).

An insurer needs to know *which* rider, not how to call him: the name keeps its first character
(``李明`` -> ``李*``) and a mobile number keeps its first three and last four digits
(``13812345678`` -> ``138****5678``). Free text written by people (incident description, injury,
the insurer's reason) may hold a phone number too; ``redact_phones`` masks any mainland mobile
number found in it, with or without +86 and separators.
"""

from __future__ import annotations

import re

# a mainland mobile number: 1[3-9] and nine more digits, optionally +86/0086 and spaces or dashes
# between the 3-4-4 groups; not part of a longer run of digits
_MOBILE = re.compile(r"(?<![0-9])(?:(?:\+|00)86[ -]?)?(1[3-9][0-9])[ -]?([0-9]{4})[ -]?([0-9]{4})(?![0-9])")


def mask_name(name: str | None) -> str | None:
    """Keep the first character, a star for each other one (at least one star)."""
    if name is None:
        return None
    text = name.strip()
    if not text:
        return ""
    return text[0] + "*" * max(len(text) - 1, 1)


def mask_phone(phone: str | None) -> str | None:
    """``138****5678`` for a mainland mobile number (any spacing, with or without +86). Any other
    number keeps at most its first three and last four digits (11 digits or more), or only its
    last two (shorter ones), so that at least four digits are always hidden."""
    if phone is None:
        return None
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) == 13 and digits.startswith("86") and digits[2] == "1":
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) >= 6:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


def redact_phones(text: str) -> str:
    """The text with every mainland mobile number in it masked."""
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def contains_phone(text: str) -> bool:
    return _MOBILE.search(text) is not None
