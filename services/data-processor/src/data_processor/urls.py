from django.contrib import admin
from django.urls import path

from data_processor import views
from data_processor.adminlogin import limited_login

urlpatterns = [
    path("stats/me", views.stats_me),
    path("health", views.health),
    path("ready", views.ready),
    path("metrics", views.metrics),
    path("admin/login/", limited_login),  # before the admin's own login: same URL, limited
    path("admin/", admin.site.urls),
]

handler404 = views.not_found
handler500 = views.server_error
