"""The REST API [WEB-1]: every app's router plus the console endpoints of the pacs app."""

from django.urls import include, path

from pacs.api import views

urlpatterns = [
    path("auth/login/", views.LoginView.as_view(), name="api-login"),
    path("auth/logout/", views.LogoutView.as_view(), name="api-logout"),
    path("auth/me/", views.MeView.as_view(), name="api-me"),
    path("auth/csrf/", views.CsrfView.as_view(), name="api-csrf"),
    path("settings/", views.RuntimeSettingsView.as_view(), name="api-settings"),
    path("settings/master-cookie/", views.MasterCookieView.as_view(), name="api-master-cookie"),
    path("", include("devices.api.urls")),
    path("", include("storages.api.urls")),
    path("", include("studies.api.urls")),
    path("", include("worklist.api.urls")),
]
