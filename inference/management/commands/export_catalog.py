"""Write the catalogue (or the part the filters select) to an ECSV, VOTable, FITS or CSV file, with a progress bar."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.catalog_apis import CatalogFilterSerializer
from inference.catalog_selectors import catalog_count
from inference.catalog_services import catalog_write
from labeling.catalog_formats import FORMATS

# Command option -> API filter name (the command takes the API's filters, with dashes).
_FILTERS = [
    "status",
    "state",
    "source",
    "inclination_min",
    "inclination_max",
    "ra_min",
    "ra_max",
    "dec_min",
    "dec_max",
]


class Command(BaseCommand):
    help = "Export the catalogue with units and UCDs, in constant memory: export_catalog --format ecsv --out F"

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="ecsv")
        parser.add_argument("--out", required=True, help="file to write (replaced if it exists)")
        for name in _FILTERS:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None)
        parser.add_argument("--cone", nargs=3, metavar=("RA", "DEC", "RADIUS"), help="deg, ICRS")
        parser.add_argument("--chunk-size", type=int, default=10000, help="rows per database page")

    def handle(self, *args, **options):
        raw = {name: options[name] for name in _FILTERS if options[name] is not None}
        if options["cone"]:
            raw |= dict(zip(("cone_ra", "cone_dec", "cone_radius"), options["cone"], strict=True))
        params = CatalogFilterSerializer(data=raw)
        if not params.is_valid():
            problems = "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in params.errors.items())
            raise CommandError(f"Invalid filters: {problems}")
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1")
        filters = {key: value for key, value in params.validated_data.items() if value is not None}
        out = Path(options["out"])
        if not out.parent.is_dir():
            raise CommandError(f"No such folder: {out.parent}")
        total = catalog_count(filters=filters)
        # Written beside the target and renamed at the end, so a failed export leaves no half file.
        partial = out.with_name(f".{out.name}.part")
        try:
            with (
                partial.open("wb") as file,
                tqdm(total=total, unit="row", desc=options["format"], disable=options["verbosity"] == 0) as bar,
            ):
                rows = catalog_write(
                    fmt=options["format"],
                    out=file,
                    filters=filters,
                    chunk_size=options["chunk_size"],
                    progress=bar.update,
                )
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
        self.stdout.write(self.style.SUCCESS(f"Wrote {rows} galaxies to {out} ({options['format']})"))
