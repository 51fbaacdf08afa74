from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "scheduling.workflows"
    label = "workflows"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Step types other apps offer (vision_analysis, bulk_prediction, ...)
        # live in their own ``workflow_steps`` modules; reading them here keeps
        # this package free of imports of other facades.
        from scheduling.workflows import receivers  # noqa: F401  (closes a run's open step when it ends)
        from scheduling.workflows.steps import load_app_step_types

        load_app_step_types()
