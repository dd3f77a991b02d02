"""Reading galaxy catalogs (CSV or ECSV) into checked rows; Django-free.

Every bad row becomes a `RowError` with its line number and reason while the good rows go on;
only a file that cannot be read at all (no header, no PGC/RA/Dec columns) raises CatalogError.
A row that passes fits the database: every range its constraints hold, PGC within a signed 64-bit integer,
no NUL (PostgreSQL text cannot hold one) and no control characters in names, numbers in ASCII digits.
Columns are matched by name, case-insensitively, with HyperLEDA's names accepted too:
PGC (pgc, pgc_id), name (objname), RA in degrees (ra, raj2000; al2000 in hours), Dec (dec, de2000),
size (d25 in arcmin, or logd25 in log10 of 0.1 arcmin), PA in degrees, b/a (ba, axial_ratio; or
logr25 = log10 a/b).
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["CatalogError", "CatalogRow", "RowError", "catalog_parse"]

ALIASES = {
    "pgc": ("pgc", "pgc_id", "pgcid", "leda"),
    "name": ("name", "objname", "object", "galaxy"),
    "ra": ("ra", "ra_deg", "raj2000", "ra2000"),
    "al2000": ("al2000", "ra_h", "ra_hours"),
    "dec": ("dec", "dec_deg", "dej2000", "de2000", "decj2000"),
    "d25": ("d25", "d25_arcmin", "diameter"),
    "logd25": ("logd25", "log_d25"),
    "pa": ("pa", "position_angle", "pa_deg"),
    "ba": ("b/a", "ba", "b_a", "axial_ratio", "axis_ratio", "q"),
    "logr25": ("logr25", "log_r25"),
}
MISSING = {"", "--", "-", "nan", "NaN", "null", "NULL", "None", "N/A", "n/a"}
NAME_MAX = 64
PGC_MAX = 2**63 - 1  # the database's bigint
D25_MAX_ARCMIN = 600.0


class CatalogError(ValueError):
    """The file as a whole cannot be read as a catalog."""


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class CatalogRow:
    line: int
    pgc: int
    name: str
    ra: float
    dec: float
    d25_arcmin: float | None
    position_angle: float | None
    axial_ratio: float | None


def _without_nul_lines(lines: list[str | None], errors: list[RowError]) -> tuple[list[str | None], list[RowError]]:
    """A line holding a NUL character becomes None and an error, wherever it is in the file."""
    for index, text in enumerate(lines):
        if text is not None and "\x00" in text:
            lines[index] = None
            errors.append(RowError(index + 1, f"contains a NUL character (column {text.index(chr(0)) + 1})"))
    return lines, errors


def _decode_lines(data: bytes) -> tuple[list[str | None], list[RowError]]:
    """Lines of text; a line that is not UTF-8 or holds a NUL becomes None and an error naming the byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _without_nul_lines(data.decode("utf-16").splitlines(), [])
        except UnicodeDecodeError as exc:
            raise CatalogError(f"the file starts like UTF-16 but is not: {exc.reason}") from exc
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\x00" in data[:4096]:
        raise CatalogError("the file contains NUL bytes: it is binary, or UTF-16 without a byte-order mark")
    lines: list[str | None] = []
    errors: list[RowError] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(None)
            errors.append(
                RowError(
                    number,
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02X} at column {exc.start + 1}); "
                    "save the file as UTF-8 (it looks like Latin-1 or Windows-1252)",
                )
            )
    if lines and lines[-1] == "":
        lines.pop()
    return _without_nul_lines(lines, errors)


def _columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for key, aliases in ALIASES.items():
        for alias in aliases:
            if alias in names:
                found[key] = names.index(alias)
                break
    if "pgc" not in found:
        raise CatalogError(f"no PGC column among {', '.join(h.strip() for h in header)}")
    if "ra" not in found and "al2000" not in found:
        raise CatalogError("no RA column (ra in degrees, or al2000 in hours)")
    if "dec" not in found:
        raise CatalogError("no Dec column")
    return found


def _number(text: str | None, what: str, *, required: bool = False) -> float | None:
    if text is None or text.strip() in MISSING:
        if required:
            raise ValueError(f"missing {what}")
        return None
    # float() also reads other scripts' digits and "1_0"; a catalog number is plain ASCII.
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text.strip(), flags=re.ASCII):
        raise ValueError(f"{what} is not a number: {text.strip()[:40]!r}")
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"{what} is not a finite number: {text.strip()[:40]!r}")
    return value


def _pgc(text: str | None) -> int:
    if text is None or text.strip() in MISSING:
        raise ValueError("missing PGC")
    digits = re.sub(r"^(PGC|LEDA)\s*", "", text.strip(), flags=re.IGNORECASE)
    # ASCII digits only: str.isdigit() is true for "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,30}", digits) or int(digits) <= 0:
        raise ValueError(f"PGC is not a positive whole number: {text.strip()[:40]!r}")
    if int(digits) > PGC_MAX:
        raise ValueError(f"PGC {digits} is larger than the largest the database holds ({PGC_MAX})")
    return int(digits)


def _from_log(value: float, what: str, *, sign: float = 1.0) -> float:
    """10 ** (sign * value), with an overflow reported as the catalog's own value out of range."""
    try:
        return 10.0 ** (sign * value)
    except OverflowError:
        raise ValueError(f"{what} {value:g} out of range") from None


def _row(line: int, fields: list[str], columns: dict[str, int], width: int) -> CatalogRow:
    if len(fields) != width:
        raise ValueError(f"expected {width} fields, found {len(fields)}")

    def get(key: str) -> str | None:
        return fields[columns[key]] if key in columns else None

    pgc = _pgc(get("pgc"))
    if "ra" in columns:
        ra = _number(get("ra"), "RA", required=True)
    else:
        ra = _number(get("al2000"), "RA (al2000, hours)", required=True) * 15.0
    dec = _number(get("dec"), "Dec", required=True)
    if not 0.0 <= ra < 360.0:
        raise ValueError(f"RA {ra:g} out of range: need 0 <= RA < 360 degrees")
    if not -90.0 <= dec <= 90.0:
        raise ValueError(f"Dec {dec:g} out of range: need -90 <= Dec <= 90 degrees")
    d25 = _number(get("d25"), "D25")
    if d25 is None and (logd25 := _number(get("logd25"), "logD25")) is not None:
        d25 = 0.1 * _from_log(logd25, "logD25")  # HyperLEDA: log10 of the diameter in 0.1 arcmin
    if d25 is not None and not 0 < d25 < D25_MAX_ARCMIN:
        raise ValueError(f"D25 {d25:g} arcmin out of range: need 0 < D25 < {D25_MAX_ARCMIN:g}")
    pa = _number(get("pa"), "PA")
    if pa is not None:
        # A position angle is defined modulo 180 degrees; -1e-20 % 180 rounds to 180 itself.
        pa = pa % 180.0
        pa = 0.0 if pa >= 180.0 else pa
    ba = _number(get("ba"), "b/a")
    if ba is None and (logr25 := _number(get("logr25"), "logR25")) is not None:
        ba = _from_log(logr25, "logR25", sign=-1.0)
    if ba is not None and not 0 < ba <= 1:
        raise ValueError(f"b/a {ba:g} out of range: need 0 < b/a <= 1")
    name = (get("name") or "").strip()
    if len(name) > NAME_MAX:
        raise ValueError(f"name longer than {NAME_MAX} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise ValueError("name contains control characters")
    return CatalogRow(line, pgc, name, ra, dec, d25, pa, ba)


def catalog_parse(data: bytes, *, filename: str = "") -> tuple[list[CatalogRow], list[RowError]]:
    """Good rows and bad rows (line numbers count from 1, as editors show them)."""
    lines, errors = _decode_lines(data)
    is_ecsv = filename.lower().endswith(".ecsv") or (bool(lines) and (lines[0] or "").startswith("# %ECSV"))
    delimiter = " " if is_ecsv else ","
    header_index = None
    for index, text in enumerate(lines):
        if text is None:
            continue
        stripped = text.strip()
        if stripped.startswith("#"):
            if is_ecsv and (match := re.match(r"#\s*delimiter:\s*'?(.)'?", stripped)):
                delimiter = match.group(1)
            continue
        if stripped:
            header_index = index
            break
    if header_index is None:
        raise CatalogError("no header line with column names")
    header_text = lines[header_index]
    if not is_ecsv and header_text.count(",") == 0:
        delimiter = "\t" if "\t" in header_text else ";" if ";" in header_text else ","

    def split(text: str) -> list[str]:
        return next(csv.reader([text], delimiter=delimiter, skipinitialspace=delimiter == " "))

    header = split(header_text)
    columns = _columns(header)
    rows: list[CatalogRow] = []
    first_line: dict[int, int] = {}
    for index in range(header_index + 1, len(lines)):
        text, line = lines[index], index + 1
        if text is None or not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            row = _row(line, split(text), columns, len(header))
        except (ValueError, csv.Error) as exc:
            errors.append(RowError(line, str(exc)))
            continue
        if row.pgc in first_line:
            errors.append(RowError(line, f"duplicate PGC {row.pgc} (first on line {first_line[row.pgc]}); row skipped"))
            continue
        first_line[row.pgc] = line
        rows.append(row)
    errors.sort(key=lambda e: e.line)
    return rows, errors
