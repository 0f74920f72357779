from django.db import migrations, models


class Migration(migrations.Migration):
    # Existing subscribers keep their name as it is (the display name); first and last name
    # start empty, with a database default so that no raw INSERT elsewhere has to name them.
    dependencies = [
        ("audience", "0009_facts"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="first_name",
            field=models.CharField(blank=True, db_default="", default="", max_length=100),
        ),
        migrations.AddField(
            model_name="subscriber",
            name="last_name",
            field=models.CharField(blank=True, db_default="", default="", max_length=100),
        ),
    ]
