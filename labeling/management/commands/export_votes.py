"""Write every vote, or the per-volunteer figures, for research: volunteers appear only under stable pseudonyms."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import vote_export
from labeling.catalog_formats import FORMATS, write_catalog
from labeling.models import Vote


class Command(BaseCommand):
    help = "Export votes (or --table volunteers) with pseudonymous volunteer ids: export_votes --format ecsv --out F"

    def add_arguments(self, parser):
        parser.add_argument("--table", choices=["votes", "volunteers"], default="votes")
        parser.add_argument("--format", choices=FORMATS, default="ecsv")
        parser.add_argument("--out", required=True, help="file to write (replaced if it exists)")

    def handle(self, *args, table: str, format: str, out: str, **options):
        path = Path(out)
        if not path.parent.is_dir():
            raise CommandError(f"No such folder: {path.parent}")
        if table == "votes":
            columns, chunks, total = vote_export.VOTE_COLUMNS, vote_export.vote_chunks(), Vote.objects.count()
        else:
            columns, chunks, total = vote_export.VOLUNTEER_COLUMNS, vote_export.volunteer_chunks(), None
        partial = path.with_name(f".{path.name}.part")
        try:
            with (
                partial.open("wb") as file,
                tqdm(total=total, unit="row", desc=table, disable=options["verbosity"] == 0) as bar,
            ):
                rows = write_catalog(format, file, chunks, columns=columns, progress=bar.update)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        self.stdout.write(self.style.SUCCESS(f"Wrote {rows} {table} to {path} ({format})"))
