from rest_framework.routers import SimpleRouter

from devices.api.views import DeviceViewSet, WadoDeviceViewSet

router = SimpleRouter()
router.register("devices", DeviceViewSet, basename="device")
router.register("wado-devices", WadoDeviceViewSet, basename="wado-device")

urlpatterns = router.urls
