from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bot flows"

    def ready(self) -> None:
        # Imported here: these modules load models, which need the app registry ready.
        from bots import engine, tasks  # noqa: PLC0415
        from conversations import events  # noqa: PLC0415

        # The bot subscribes to what conversations announces (conversations never imports us).
        events.message_received.connect(
            tasks.on_message_received, dispatch_uid="bots.message_received"
        )
        events.taken_over.connect(tasks.on_taken_over, dispatch_uid="bots.taken_over")
        events.auto_reply_veto_register(engine.inbox_has_greeting_flow)
