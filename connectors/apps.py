from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Connectors"

    def ready(self) -> None:
        # Channel kinds register once at start-up (connectors.adapters.registry).
        from connectors.webchat.adapter import register_webchat  # noqa: PLC0415 - app loading

        register_webchat()
