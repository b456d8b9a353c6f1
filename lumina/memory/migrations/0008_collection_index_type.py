from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0007_record_access"),
    ]

    operations = [
        # Existing collections keep the single-precision index they were built with.
        migrations.AddField(
            model_name="collection",
            name="index_type",
            field=models.CharField(
                choices=[
                    ("halfvec", "Half precision (re-scored exactly)"),
                    ("vector", "Single precision"),
                ],
                default="vector",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="collection",
            name="index_type",
            field=models.CharField(
                choices=[
                    ("halfvec", "Half precision (re-scored exactly)"),
                    ("vector", "Single precision"),
                ],
                default="halfvec",
                editable=False,
                max_length=10,
            ),
        ),
    ]
