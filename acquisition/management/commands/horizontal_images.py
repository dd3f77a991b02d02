from django.core.management import BaseCommand
from tqdm import tqdm

from acquisition.receivers import color_image_name
from acquisition.services import color_image_horizontal_ensure
from labeling import services as labeling_services
from labeling.models import Galaxy


class Command(BaseCommand):
    help = (
        "Make the copies of the colour composites turned major axis horizontal that the labeling page shows "
        "(new images get theirs when stored; this fills in older ones)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="Make every copy again (after a catalogue import changed the PAs)."
        )

    def handle(self, *args, all, **options):
        galaxies = Galaxy.objects.exclude(color_image="")
        if not all:
            galaxies = galaxies.filter(color_image_horizontal="")
        made = 0
        for galaxy in tqdm(
            galaxies.iterator(chunk_size=500), total=galaxies.count(), desc="horizontal", file=self.stderr
        ):
            name = color_image_name(galaxy.pk)
            horizontal = color_image_horizontal_ensure(galaxy=galaxy, name=name, force=all)
            labeling_services.galaxy_color_image_set(galaxy_id=galaxy.pk, name=name, horizontal_name=horizontal)
            made += bool(horizontal)
        self.stdout.write(self.style.SUCCESS(f"{made} galaxies shown turned major axis horizontal."))
