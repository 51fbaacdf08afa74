from django.apps import AppConfig


class VisionPipelineConfig(AppConfig):
    name = "vision_pipeline"
    verbose_name = "Vision pipeline"
