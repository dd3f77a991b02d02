"""An astronomer's table of galaxies (ECSV, VOTable, FITS or CSV) read through astropy and checked; Django-free.

The table needs a PGC column or RA and Dec columns (names as in acquisition.catalog.ALIASES, any case);
D25 and PA are optional. Units are honoured: RA, Dec and PA in any angle unit (hourangle, rad, arcsec...),
D25 in any angle unit; a column without a unit is in degrees (D25: arcmin). Every other column is kept
as it is for the result table.

Whole-table problems raise TableError with a code and a message naming the column, the rows and the
limit: unsupported or unreadable file, too many rows, no usable columns, text or wrong units where numbers
are needed, coordinates out of range. A row that only lacks values (neither a PGC nor a position) is
kept with its problem, so the result can say why it was not processed.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from acquisition.catalog import ALIASES

__all__ = ["READ_FORMATS", "TableError", "TableRow", "read_galaxy_table"]

# File extension -> astropy format.
READ_FORMATS = {
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".vot": "votable",
    ".votable": "votable",
    ".xml": "votable",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
}
# The name of each format for messages and for the result table.
FORMAT_NAMES = {"ascii.ecsv": "ecsv", "ascii.csv": "csv", "votable": "votable", "fits": "fits"}


class TableError(ValueError):
    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class TableRow:
    index: int  # 0-based row of the uploaded table
    pgc: int | None
    ra: float | None
    dec: float | None
    d25_arcmin: float | None
    position_angle: float | None
    problem: str  # "" when the row can be processed


def _table_format(filename: str) -> str:
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in READ_FORMATS:
        raise TableError(
            f"Unsupported file type {suffix or '(none)'!r}: upload ECSV (.ecsv), VOTable (.vot, .xml), "
            "FITS (.fits) or CSV (.csv).",
            code="unsupported_table",
        )
    return READ_FORMATS[suffix]


def _row_count_hint(data: bytes, fmt: str) -> int:
    """Rows the file claims, counted before astropy parses it (so 10 million rows are refused cheaply)."""
    if fmt == "fits":
        with fits.open(io.BytesIO(data), lazy_load_hdus=True) as hdus:
            return max((h.header.get("NAXIS2", 0) for h in hdus[1:] if h.is_image is False), default=0)
    if fmt == "votable":
        return data.count(b"<TR")
    return data.count(b"\n")


def _read(data: bytes, fmt: str, max_rows: int) -> Table:
    try:
        claimed = _row_count_hint(data, fmt)
    except Exception as exc:
        raise TableError(
            f"The file could not be read as {FORMAT_NAMES[fmt]}: {exc}"[:300], code="malformed_table"
        ) from None
    # Text formats count header and comment lines too: allow for them before the exact check below.
    if claimed > max_rows + (200 if fmt.startswith("ascii") else 0):
        raise TableError(f"The table has about {claimed:,} rows; the limit is {max_rows:,}.", code="too_many_rows")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            table = Table.read(io.BytesIO(data), format=fmt)
    except Exception as exc:
        raise TableError(
            f"The file could not be read as {FORMAT_NAMES[fmt]}: {exc}"[:300], code="malformed_table"
        ) from None
    if len(table) > max_rows:
        raise TableError(f"The table has {len(table):,} rows; the limit is {max_rows:,}.", code="too_many_rows")
    if len(table) == 0:
        raise TableError("The table has no rows.", code="empty_table")
    return table


def _find(table: Table, key: str) -> str | None:
    names = {name.strip().lower(): name for name in table.colnames}
    return next((names[alias] for alias in ALIASES[key] if alias in names), None)


def _values(table: Table, column: str | None, unit: u.Unit, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(float values in `unit`, missing mask), or None when the column is absent."""
    if column is None:
        return None
    col = table[column]
    if col.dtype.kind not in "iuf":
        example = next((str(v) for v in np.ma.compressed(np.ma.asanyarray(col))[:1]), "")
        raise TableError(
            f"Column {column!r} ({what}) must hold numbers; it holds text such as {example[:30]!r}. "
            "Give plain numbers with the unit in the column's metadata (or degrees).",
            code="invalid_column",
        )
    values = np.array(np.ma.getdata(col), dtype=float)  # a plain array: a Column would carry its unit along
    if col.unit is not None:
        try:
            values = (values * col.unit).to_value(unit)
        except u.UnitConversionError:
            raise TableError(
                f"Column {column!r} ({what}) has unit {str(col.unit)!r}, which is not an angle.",
                code="invalid_unit",
            ) from None
    missing = np.ma.getmaskarray(col) | ~np.isfinite(values)
    return values, missing


def _check_range(values, missing, low: float, high: float, column: str, *, high_open: bool = False) -> None:
    bad = ~missing & ((values < low) | ((values >= high) if high_open else (values > high)))
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(i + 1) for i in rows[:5])
        more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
        interval = f"[{low:g}, {high:g}{')' if high_open else ']'}"
        raise TableError(f"Column {column!r} is out of range {interval} in rows {shown}{more}.", code="out_of_range")


def read_galaxy_table(data: bytes, filename: str, *, max_rows: int) -> tuple[Table, list[TableRow], str]:
    """The table, its rows checked, and its format ("ecsv", "votable", "fits" or "csv")."""
    fmt = _table_format(filename)
    table = _read(data, fmt, max_rows)
    columns = {key: _find(table, key) for key in ("pgc", "ra", "dec", "d25", "pa")}
    if columns["pgc"] is None and (columns["ra"] is None or columns["dec"] is None):
        raise TableError(
            f"No PGC column and no RA and Dec columns among {', '.join(table.colnames)[:200]}; "
            f"expected {' or '.join(ALIASES['pgc'])}, or {'/'.join(ALIASES['ra'])} with {'/'.join(ALIASES['dec'])}.",
            code="missing_columns",
        )
    n = len(table)
    nothing = (np.zeros(n), np.ones(n, dtype=bool))
    ra, ra_missing = _values(table, columns["ra"], u.deg, "RA") or nothing
    dec, dec_missing = _values(table, columns["dec"], u.deg, "Dec") or nothing
    d25, d25_missing = _values(table, columns["d25"], u.arcmin, "D25") or nothing
    pa, pa_missing = _values(table, columns["pa"], u.deg, "PA") or nothing
    _check_range(ra, ra_missing, 0, 360, columns["ra"] or "ra", high_open=True)
    _check_range(dec, dec_missing, -90, 90, columns["dec"] or "dec")
    _check_range(d25, d25_missing, 1e-3, 600, columns["d25"] or "d25")
    pgc = np.zeros(n, dtype=np.int64)
    pgc_missing = np.ones(n, dtype=bool)
    if columns["pgc"] is not None:
        values, pgc_missing = _values(table, columns["pgc"], u.dimensionless_unscaled, "PGC")
        _check_range(values, pgc_missing, 1, 2**62, columns["pgc"])
        fractional = ~pgc_missing & (values != np.round(values))
        if fractional.any():
            raise TableError(
                f"Column {columns['pgc']!r} must hold whole PGC numbers (row {np.flatnonzero(fractional)[0] + 1}).",
                code="invalid_column",
            )
        pgc = np.where(pgc_missing, 0, values).astype(np.int64)
    rows = []
    for i in range(n):
        has_pgc = not pgc_missing[i]
        has_position = not (ra_missing[i] or dec_missing[i])
        problem = "" if has_pgc or has_position else "Neither a PGC number nor a position (RA and Dec)."
        rows.append(
            TableRow(
                index=i,
                pgc=int(pgc[i]) if has_pgc else None,
                ra=float(ra[i]) if has_position else None,
                dec=float(dec[i]) if has_position else None,
                d25_arcmin=None if d25_missing[i] else float(d25[i]),
                position_angle=None if pa_missing[i] else float(math.fmod(pa[i], 180.0) % 180.0),
                problem=problem,
            )
        )
    return table, rows, FORMAT_NAMES[fmt]
