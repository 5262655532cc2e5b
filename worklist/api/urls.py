from django.urls import path
from rest_framework.routers import SimpleRouter

from worklist.api.views import AmqpSettingsView, AmqpTestView, ProcedureViewSet, StepViewSet

router = SimpleRouter()
router.register("worklist/procedures", ProcedureViewSet, basename="procedure")
router.register("worklist/steps", StepViewSet, basename="step")

urlpatterns = [
    path("settings/amqp/", AmqpSettingsView.as_view(), name="api-amqp-settings"),
    path("settings/amqp/test/", AmqpTestView.as_view(), name="api-amqp-test"),
    *router.urls,
]
