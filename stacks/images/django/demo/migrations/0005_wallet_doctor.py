import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("demo", "0004_job_taskrun")]

    operations = [
        migrations.CreateModel(
            name="Wallet",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("balance", models.IntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="ConstrainedWallet",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("balance", models.IntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        check=models.Q(("balance__gte", 0)), name="constrainedwallet_balance_gte_0"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Debit",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("amount", models.IntegerField()),
                ("balance_after", models.IntegerField()),
                ("wallet", models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, to="demo.wallet")),
                ("constrained_wallet", models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, to="demo.constrainedwallet")),
            ],
        ),
        migrations.CreateModel(
            name="Doctor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("on_call", models.BooleanField(default=True)),
            ],
        ),
    ]
