from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("connectors", "0005_channel_settings_from_fields")]

    operations = [
        migrations.RemoveField(
            model_name='channel',
            name='outbound_url',
        ),
        migrations.RemoveField(
            model_name='channel',
            name='signing_credential',
        ),
    ]
