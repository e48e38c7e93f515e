from django.db import migrations, models


def raise_nothing_yet(apps, schema_editor):
    """The flag's one row, down: the next stored event raises it."""
    apps.get_model("connectors", "InboundDrain").objects.using(
        schema_editor.connection.alias
    ).get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0008_inbound_event_one_index_fewer"),
    ]

    operations = [
        migrations.CreateModel(
            name="InboundDrain",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("requested_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("id", 1)), name="inbound_drain_one_row"
                    )
                ],
            },
        ),
        migrations.RunPython(raise_nothing_yet, migrations.RunPython.noop),
    ]
