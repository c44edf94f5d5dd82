"""Masking the rider's identity."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.mediation.packet.privacy import contains_phone, mask_name, mask_phone, redact_phones

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "masked"), [("李明", "李*"), ("欧阳娜娜", "欧***"), ("李", "李*"), (" 王五 ", "王*"),
                                              ("", ""), (None, None)])
def test_a_name_keeps_its_first_character(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize(("phone", "masked"), [
    ("13812345678", "138****5678"), ("+86 138 1234 5678", "138****5678"), ("0086-138-1234-5678", "138****5678"),
    ("8613812345678", "138****5678"), ("0752-1234567", "075****4567"), ("1234567", "*****67"), ("12345", "*****"), (None, None),
])
def test_a_phone_keeps_three_and_four_digits_at_most(phone, masked):
    assert mask_phone(phone) == masked


@given(st.text(alphabet="0123456789 +-", max_size=24))
def test_a_masked_phone_never_shows_more_than_seven_digits(phone):
    out = mask_phone(phone)
    digits = re.sub(r"[^0-9]", "", phone)
    shown = len(re.sub(r"[^0-9]", "", out or ""))
    assert out is not None and shown <= min(7, max(len(digits) - 4, 0))
    assert not contains_phone(out)


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.text(max_size=10), st.text(max_size=10))
def test_free_text_loses_any_mobile_number(phone, before, after):
    text = f"{before} {phone} {after}"
    assert phone not in redact_phones(text)


def test_redaction_keeps_longer_numbers_and_other_text():
    assert redact_phones("order 2025051413812345678901 done") == "order 2025051413812345678901 done"
    assert redact_phones("电话13812345678，谢谢") == "电话138****5678，谢谢"
    assert redact_phones("tel +86 139-1234-5678.") == "tel 139****5678."
