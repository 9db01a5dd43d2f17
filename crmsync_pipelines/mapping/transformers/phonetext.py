"""Reading phone numbers out of CRM text, on Google's libphonenumber (``phonenumbers``).

The rules (documented with examples in docs/mappings.md):

- A number is accepted only when libphonenumber calls it **valid** (``is_valid_number``: a
  length *and* a number range the numbering plan assigns), never merely "possible".
- Only digits present in the input are used; nothing is added, dropped or guessed. Letters
  inside the number (vanity numbers, typos) refuse it; a label before or after it
  (``tel.:``, ``(mobil)``) is ignored.
- A number written with ``+`` or an international prefix (``00`` in CZ/SK) is read as such.
  Otherwise the interpretations are tried in order and the first valid one wins: the
  default region's national format; the digits already starting with a country code
  (``421 905 123 456``); each other allowed region's national format (``0905 123 456`` in SK).
- ``+420 (0) 601 …``: a national trunk prefix in parentheses after a country code is dropped;
  ``(+420) 601 …``: a country code in parentheses is read as one.
- ``603456789.0`` (a spreadsheet's float) is the whole number ``603456789``; so is
  ``6.03456789E+08`` (scientific notation that kept every digit), while ``6.03457E+08``
  (rounded: the digits are gone) is refused.
- An extension (``ext. 12``, ``kl. 12``, ``x12``, ``#12``, ``;ext=12``) is split off.
- Several numbers in one value (``a, b``, ``a; b``, ``a | b``, one per line, or ``a / b``
  when the whole is not one valid number) are read one by one.
- Typography is read as what it looks like: any Unicode space (thin, narrow no-break,
  ideographic) is a space, a line or paragraph separator (U+2028, U+2029, U+0085) a new
  line, any dash or the minus sign (U+2212) a hyphen, the fullwidth ``＋`` a plus;
  invisible format characters (zero-width space, direction marks, BOM) are dropped
  (Unicode general categories Zs, Zl, Zp, Pd and Cf).
- ``00`` starts an international number even where the region's own international prefix
  differs (``0033 6 12 …`` in the US, where it is ``011``), as no national number starts so.
- In a region whose national numbers are written with a trunk ``0`` (DE, GB, SK, ...), digits
  without it that are *also* a valid number with a country code (``420603123456`` in DE) are
  refused as ambiguous rather than read as either.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber

#: An extension at the end: English and Czech/Slovak markers (ext, extn, x, #, kl., klapka, linka).
_EXTENSION = re.compile(
    r"(?:(?<=[\d\s).])|\b)(?:ext(?:ension|n)?|kl(?:apka)?|linka|x)\s*[.:=]?\s*(\d{1,7})\s*$"
    r"|\s*(?:#|;\s*ext=)\s*(\d{1,7})\s*$",
    re.IGNORECASE,
)
#: A part of a list that is only the extension of the number before it (``604 567 890, kl. 12``).
_EXTENSION_ONLY = re.compile(
    r"^\s*(?:ext(?:ension|n)?|kl(?:apka)?|linka|x|#|ext\s*=)\s*[.:=]?\s*\d{1,7}\s*$", re.IGNORECASE
)
#: A trunk prefix in parentheses right after a country code: ``+420 (0) 601``, ``0044 (0)20``.
_TRUNK_IN_PARENS = re.compile(r"^(\+|00)\s*(\d{1,3})\s*\(\s*0\s*\)")
#: A country code in parentheses: ``(+420) 601 …``, ``(00421) 905 …``.
_CODE_IN_PARENS = re.compile(r"^\(\s*(\+|00)\s*(\d{1,3})\s*\)")
#: A whole number written as a float by a spreadsheet: ``603456789.0`` / ``603456789,00``.
_FLOAT_TEXT = re.compile(r"^(\+?\d+)[.,]0+$")
#: A number in scientific notation, as spreadsheets write long numbers: ``6.03123456E+08``.
_SCIENTIFIC = re.compile(r"^(\d)[.,](\d+)[eE]\+?(\d{1,2})$")
#: Separators that always split a value into several numbers.
_LIST_SEPARATORS = re.compile(r"[,;|\n\r]+")
_SLASH = re.compile(r"\s*/\s*")
_DIGIT = re.compile(r"\d")
#: Characters that may appear inside a written number (grouping and an international ``+``).
_NUMBER_CHARS = re.compile(r"^\+?[\d\s\-./()\u00a0\u2010-\u2015]*$")


def _typography_table() -> dict[int, str | None]:
    """Unicode spaces -> " ", dashes and minus -> "-", format characters removed (see module doc)."""
    table: dict[int, str | None] = {0x2212: "-", 0xFF0B: "+", 0x85: "\n"}
    for code in range(0x80, 0x10000):  # the Basic Multilingual Plane holds every space and dash
        category = unicodedata.category(chr(code))
        if category == "Zs":
            table[code] = " "
        elif category in ("Zl", "Zp"):  # U+2028/U+2029 separate lines, like a new line
            table[code] = "\n"
        elif category == "Pd":
            table[code] = "-"
        elif category == "Cf":
            table[code] = None
    return table


_TYPOGRAPHY = _typography_table()


@dataclass(frozen=True, slots=True)
class Reading:
    """The numbers found in one text, or why none could be read (``problem``)."""

    numbers: tuple[PhoneNumber, ...] = ()
    problem: str | None = None


class PhoneReader:
    """Reads text as phone numbers for a default region plus other allowed regions."""

    def __init__(self, default_region: str, other_regions: tuple[str, ...] = ()) -> None:
        self.default_region = default_region
        self.other_regions = tuple(r for r in other_regions if r != default_region)
        self.regions_text = " or ".join((default_region, *self.other_regions))

    def read(self, text: str) -> Reading:
        """All numbers in ``text`` (one or more), or a ``problem`` naming why it was refused."""
        stripped = (text if text.isascii() else text.translate(_TYPOGRAPHY)).strip()
        scientific = _SCIENTIFIC.match(stripped)
        if scientific:
            whole, problem = _from_scientific(scientific)
            if problem is not None:
                return Reading(problem=problem)
            stripped = whole
        if _LIST_SEPARATORS.search(stripped) and not _FLOAT_TEXT.match(stripped):
            parts: list[str] = []
            for part in _LIST_SEPARATORS.split(stripped):
                if parts and _EXTENSION_ONLY.match(part):
                    parts[-1] = f"{parts[-1]} {part.strip()}"
                elif part.strip():
                    parts.append(part)
            return self._several(parts)
        single = self._one(stripped)
        if single.problem is None or "/" not in stripped:
            return single
        parts = [part for part in _SLASH.split(stripped) if part.strip()]
        if len(parts) < 2:
            return single
        several = self._several(parts)
        return several if several.problem is None else single

    def _several(self, parts: list[str]) -> Reading:
        numbers: list[PhoneNumber] = []
        for part in parts:
            reading = self._one(part.strip())
            if reading.problem is not None:
                return Reading(problem=f"holds {part.strip()!r}, which {reading.problem}")
            numbers.extend(reading.numbers)
        if not numbers:
            return Reading(problem="has no digits")
        return Reading(tuple(numbers))

    def _one(self, text: str) -> Reading:
        written, extension = _split_extension(text)
        labelled = _strip_labels(written)
        if labelled is None:
            return Reading(problem="has no digits")
        core = labelled
        float_text = _FLOAT_TEXT.match(core)
        if float_text:
            core = float_text.group(1)
        core = _CODE_IN_PARENS.sub(lambda m: f"{m.group(1)}{m.group(2)} ", core)
        core = _TRUNK_IN_PARENS.sub(lambda m: f"{m.group(1)}{m.group(2)} ", core)
        if not _NUMBER_CHARS.match(core):
            return Reading(problem="has letters or symbols inside the number")
        number = self._interpret(core)
        if isinstance(number, str):
            return Reading(problem=number)
        if number is None:
            return Reading(
                problem=f"is not a valid phone number in {self.regions_text}"
                if not core.startswith(("+", "00"))
                else "is not a valid phone number"
            )
        if extension:
            number.extension = extension
        return Reading((number,))

    def _interpret(self, core: str) -> PhoneNumber | str | None:
        """The first valid interpretation of a letter-free number text; None, or a problem text.

        A national reading in another allowed region is refused as ambiguous when the same
        digits, less a leading ``0``, are a mobile number of an allowed region whose plan has
        no trunk prefix: ``0601 234 567`` is a Slovak landline (``+421601234567``) *and* a
        Czech mobile written with a habitual ``0`` (``+420601234567``); which one the person
        meant cannot be read from the text, so neither is written.
        """
        if core.startswith("+"):
            return _valid(core, None)
        first = _parse(core, self.default_region)
        if first is not None and first.country_code_source == phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD:
            return first if phonenumbers.is_valid_number(first) else None  # 00420 …: international
        digits = "".join(_DIGIT.findall(core))
        if first is not None and phonenumbers.is_valid_number(first):
            return self._unless_also_international(first, digits)
        if not digits.startswith("0"):
            with_code = _valid("+" + digits, None)
            if with_code is not None:
                return with_code
        elif digits.startswith("00"):  # 00 where the region's own international prefix differs (US: 011)
            international = _valid("+" + digits[2:], None)
            if international is not None:
                return international
        for region in self.other_regions:
            number = _valid(core, region)
            if number is not None:
                rival = self._mobile_behind_trunk_zero(digits, phonenumbers.region_code_for_number(number))
                if rival is not None:
                    return (
                        "is ambiguous: "
                        f"{phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)} "
                        f"({phonenumbers.region_code_for_number(number)}) or "
                        f"{phonenumbers.format_number(rival, phonenumbers.PhoneNumberFormat.E164)} "
                        f"({phonenumbers.region_code_for_number(rival)} written with a leading 0)"
                    )
                return number
        return None

    def _unless_also_international(self, national: PhoneNumber, digits: str) -> PhoneNumber | str:
        """``national``, or a problem when its digits were written without the region's trunk ``0``
        and are just as well a valid number that starts with its country code."""
        if _national_prefix(self.default_region) != "0" or digits.startswith("0"):
            return national
        if national.country_code_source != phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY:
            return national
        rival = _valid("+" + digits, None)
        if rival is None or rival.country_code == national.country_code:
            return national
        return (
            "is ambiguous: "
            f"{phonenumbers.format_number(national, phonenumbers.PhoneNumberFormat.E164)} "
            f"({self.default_region} written without its trunk 0) or "
            f"{phonenumbers.format_number(rival, phonenumbers.PhoneNumberFormat.E164)} "
            f"({phonenumbers.region_code_for_number(rival)} with its country code)"
        )

    def _mobile_behind_trunk_zero(self, digits: str, chosen_region: str | None) -> PhoneNumber | None:
        """A mobile number of another allowed, trunk-prefix-free region in ``0`` + digits, or None."""
        if not digits.startswith("0"):
            return None
        for region in (self.default_region, *self.other_regions):
            if region == chosen_region or _national_prefix(region) is not None:
                continue
            number = _valid(digits[1:], region)
            if number is not None and phonenumbers.number_type(number) in _MOBILE_TYPES:
                return number
        return None


_MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def _national_prefix(region: str) -> str | None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else metadata.national_prefix


def _parse(text: str, region: str | None) -> PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region, keep_raw_input=region is not None)
    except NumberParseException:
        return None


def _valid(text: str, region: str | None) -> PhoneNumber | None:
    number = _parse(text, region)
    return number if number is not None and phonenumbers.is_valid_number(number) else None


def _from_scientific(match: re.Match[str]) -> tuple[str, str | None]:
    """The digits of ``6.03123456E+08`` when the notation kept all of them, else a problem.

    A spreadsheet that shows ``6.03123E+08`` has dropped digits: the zeros it would pad with
    (``603123000``) are not the number, so such a value is refused rather than padded.
    """
    lead, fraction, exponent = match.group(1), match.group(2), int(match.group(3))
    if len(fraction) > exponent:
        return "", "is in scientific notation with a fraction, so not a whole number"
    if len(fraction) < exponent:
        return "", (
            f"is in scientific notation that lost {exponent - len(fraction)} of its digits "
            "(a spreadsheet rounded it); export the column as text"
        )
    return lead + fraction, None


def _split_extension(text: str) -> tuple[str, str | None]:
    match = _EXTENSION.search(text)
    if match is None or not _DIGIT.search(text[: match.start()]):
        return text, None
    return text[: match.start()].rstrip(" ,;-"), match.group(1) or match.group(2)


def _strip_labels(text: str) -> str | None:
    """The span from the first ``+``/``(``/digit to the last digit or ``)``; None without digits.

    Text before and after it (``tel.:``, ``(mobil)``, ``- sekretariát``) is a label and must
    not contain digits; a label is ignored, never read as part of the number.
    """
    first = _DIGIT.search(text)
    if first is None:
        return None
    start = first.start()
    while start > 0 and text[start - 1] in "+( \u00a0":
        start -= 1
    while start < first.start() and text[start] in " \u00a0":
        start += 1
    last = len(text)
    while not text[last - 1].isdecimal():  # str.isdecimal is exactly the \d of a str pattern
        last -= 1
    end = last
    tail = text[end:]
    if tail.lstrip().startswith(")") and text[:last].count("(") > text[:last].count(")"):
        end = last + tail.index(")") + 1
    return text[start:end]
