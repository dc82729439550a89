from django.apps import AppConfig


class DataProcessorConfig(AppConfig):
    name = "data_processor"
    verbose_name = "Chat statistics"
    default_auto_field = "django.db.models.BigAutoField"
