from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inference", "0003_ensemble_prediction_key")]

    operations = [
        migrations.AddConstraint(
            model_name="ensembleprediction",
            constraint=models.UniqueConstraint(
                fields=("galaxy", "image", "ensemble_key"), name="one_ensemble_prediction_per_image_ensemble"
            ),
        ),
    ]
