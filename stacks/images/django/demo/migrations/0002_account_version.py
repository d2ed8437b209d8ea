from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("demo", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="account",
            name="version",
            field=models.IntegerField(default=0),
        ),
    ]
