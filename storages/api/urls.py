from rest_framework.routers import SimpleRouter

from storages.api.views import StorageViewSet

router = SimpleRouter()
router.register("storages", StorageViewSet, basename="storage")

urlpatterns = router.urls
