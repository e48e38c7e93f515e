"""Break-glass on a tenant's host: the hand-off landing and the owners' page."""

from django.urls import path

from tenants.breakglass import views

app_name = "break_glass"

urlpatterns = [
    path("break-glass/enter/", views.enter, name="enter"),
    path("settings/break-glass/", views.owner_list, name="owner_list"),
    path("settings/break-glass/<int:grant_id>/approve/", views.owner_approve, name="approve"),
    path("settings/break-glass/<int:grant_id>/deny/", views.owner_deny, name="deny"),
    path("settings/break-glass/<int:grant_id>/end/", views.owner_end, name="end"),
]
