"""The catalogue writers: every format read back with astropy gives the same values, units and nulls."""

import io

import numpy as np
import pytest
from astropy.table import Table

from labeling.catalog_formats import CATALOG_COLUMNS, FORMATS, stream_catalog, write_catalog

READ_FORMAT = {"ecsv": "ascii.ecsv", "votable": "votable", "fits": "fits", "csv": "ascii.csv"}


def _value(column, i):
    if column.kind == "f":
        return 45.0 + i * 0.123456789
    if column.kind in "iu":
        return 10**12 + i if column.name == "pgc" else i
    if column.kind == "b":
        return i % 2 == 0
    return f"NGC {i}"  # a space, so text formats must quote


def _chunk(start: int, n: int) -> dict[str, list]:
    """Rows start..start+n; every third row has every nullable column missing."""
    return {
        c.name: [None if c.nullable and i % 3 == 0 else _value(c, i) for i in range(start, start + n)]
        for c in CATALOG_COLUMNS
    }


def _read(fmt: str, data: bytes) -> Table:
    return Table.read(io.BytesIO(data), format=READ_FORMAT[fmt])


def _written(fmt: str, chunks) -> tuple[int, bytes]:
    out = io.BytesIO()
    n = write_catalog(fmt, out, chunks, meta={"description": "test catalogue"})
    return n, out.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_with_the_same_values_units_and_nulls(fmt):
    chunks = [_chunk(0, 7), _chunk(7, 0), _chunk(7, 5)]
    n, data = _written(fmt, chunks)
    table = _read(fmt, data)

    assert n == len(table) == 12
    assert table.colnames == [c.name for c in CATALOG_COLUMNS]
    for column in CATALOG_COLUMNS:
        expected = [v for chunk in chunks for v in chunk[column.name]]
        got = table[column.name]
        missing = np.array([v is None for v in expected])
        if column.kind == "U" and fmt in ("votable", "fits"):
            # VOTable and FITS have no null string: a missing one is the empty string.
            assert list(np.ma.filled(got, "")) == ["" if v is None else v for v in expected], column.name
            continue
        assert list(np.ma.getmaskarray(got)) == list(missing), column.name
        present = [v for v in expected if v is not None]
        values = list(np.ma.compressed(got)) if np.ma.isMaskedArray(got) else list(got)
        if column.kind == "b" and fmt == "csv":
            values = [v == "True" for v in values]  # CSV has no types
        if column.kind == "f":
            np.testing.assert_allclose(values, present, rtol=1e-15, err_msg=column.name)
        else:
            assert values == present, column.name
        if fmt != "csv":  # CSV has nowhere to put a unit
            assert (str(got.unit) if got.unit else None) == column.unit, column.name


@pytest.mark.parametrize("fmt", ["ecsv", "votable"])
def test_ucds_and_descriptions_survive(fmt):
    _, data = _written(fmt, [_chunk(0, 2)])
    table = _read(fmt, data)
    for column in CATALOG_COLUMNS:
        assert table[column.name].meta["ucd"] == column.ucd
        # VOTable wraps long descriptions over lines.
        assert " ".join(table[column.name].description.split()) == column.description


def test_fits_header_carries_ucds_and_the_patched_row_count():
    _, data = _written("fits", [_chunk(0, 4), _chunk(4, 3)])
    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as hdus:
        header = hdus[1].header
        assert header["NAXIS2"] == 7
        assert header["TUCD1"] == "meta.id;meta.main"
        assert len(data) % 2880 == 0


def test_streamed_fits_equals_written_fits_and_checks_the_declared_count():
    chunks = [_chunk(0, 4), _chunk(4, 3)]
    _, written = _written("fits", chunks)
    meta = {"description": "test catalogue"}
    assert b"".join(stream_catalog("fits", chunks, n_rows=7, meta=meta)) == written
    with pytest.raises(ValueError, match="declared"):
        b"".join(stream_catalog("fits", chunks, n_rows=9))
    with pytest.raises(ValueError, match="row count"):
        stream_catalog("fits", chunks)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_catalogue_is_a_valid_file(fmt):
    n, data = _written(fmt, iter([]))
    assert n == 0
    assert len(_read(fmt, data)) == 0


def test_required_column_given_null_is_refused():
    chunk = _chunk(1, 1)
    chunk["ra"] = [None]
    with pytest.raises(ValueError, match="ra must not be null"):
        _written("ecsv", [chunk])


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="one of ecsv, votable, fits, csv"):
        _written("xlsx", [])


@pytest.mark.parametrize("fmt", ["ecsv", "csv"])
def test_text_written_in_chunks_is_what_astropy_writes_for_the_whole_table(fmt):
    from labeling.catalog_formats import catalog_table

    chunks = [_chunk(0, 4), _chunk(4, 5)]
    whole = catalog_table({c.name: [v for ch in chunks for v in ch[c.name]] for c in CATALOG_COLUMNS})
    expected = io.StringIO()
    whole.write(expected, format=READ_FORMAT[fmt])
    assert b"".join(stream_catalog(fmt, chunks)).decode() == expected.getvalue()
