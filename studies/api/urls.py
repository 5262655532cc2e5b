from rest_framework.routers import SimpleRouter

from studies.api.views import SeriesViewSet, StudyViewSet

router = SimpleRouter()
router.register("studies", StudyViewSet, basename="study")
router.register("series", SeriesViewSet, basename="series")

urlpatterns = router.urls
