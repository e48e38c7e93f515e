from django.db import migrations


def forward(apps, schema_editor):
    """API channels keep their reply URL as a setting and their secret by role."""
    Channel = apps.get_model("connectors", "Channel")
    ChannelCredential = apps.get_model("connectors", "ChannelCredential")
    for channel in Channel.objects.all():
        if channel.kind == "api" and channel.outbound_url:
            channel.settings = {**(channel.settings or {}), "outbound_url": channel.outbound_url}
            channel.save(update_fields=["settings"])
        ChannelCredential.objects.get_or_create(
            channel=channel,
            role="signing_secret",
            defaults={"credential_id": channel.signing_credential_id},
        )


def backward(apps, schema_editor):
    Channel = apps.get_model("connectors", "Channel")
    ChannelCredential = apps.get_model("connectors", "ChannelCredential")
    for link in ChannelCredential.objects.filter(role="signing_secret"):
        Channel.objects.filter(pk=link.channel_id).update(
            signing_credential_id=link.credential_id,
            outbound_url=(link.channel.settings or {}).get("outbound_url", ""),
        )


class Migration(migrations.Migration):
    dependencies = [("connectors", "0004_channel_kinds_and_inbound_events")]

    operations = [migrations.RunPython(forward, backward)]
