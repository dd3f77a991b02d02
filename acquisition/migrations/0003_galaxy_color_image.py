"""Copy each galaxy's colour composite (JPEG preferred) onto labeling's Galaxy.color_image."""

from django.db import migrations


def fill(apps, schema_editor):
    Galaxy = apps.get_model("labeling", "Galaxy")
    GalaxyImage = apps.get_model("acquisition", "GalaxyImage")
    # "png" sorts after "jpeg": the last name written per galaxy is the JPEG when there is one.
    images = GalaxyImage.objects.filter(band="color").order_by("galaxy_id", "-format").values_list("galaxy_id", "file")
    chosen = dict(images.iterator())
    for galaxy_id, name in chosen.items():
        Galaxy.objects.filter(pk=galaxy_id).update(color_image=name)


class Migration(migrations.Migration):
    dependencies = [("acquisition", "0002_job_items"), ("labeling", "0004_galaxy_fields_from_above")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
