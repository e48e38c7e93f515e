from celery.signals import worker_ready
from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Connectors"

    def ready(self) -> None:
        # Imported here: these modules load models, which need the app registry ready.
        from connectors import tasks  # noqa: PLC0415
        from connectors.api_channel import register_api  # noqa: PLC0415
        from connectors.meta import register_meta  # noqa: PLC0415
        from connectors.webchat.adapter import register_webchat  # noqa: PLC0415
        from conversations import events  # noqa: PLC0415

        register_api()
        register_meta()
        register_webchat()
        # Channels subscribe to what conversations announces (conversations never imports us).
        events.reply_queued.connect(tasks.on_reply_queued, dispatch_uid="connectors.reply_queued")
        worker_ready.connect(
            tasks.relay_on_worker_start, dispatch_uid="connectors.relay", weak=False
        )
