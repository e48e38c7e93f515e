from django.urls import path

from tenants import console
from tenants.breakglass import views as breakglass_views

app_name = "console"

urlpatterns = [
    path("", console.tenant_list, name="tenant_list"),
    path("tenants/<slug:slug>/", console.tenant_detail, name="tenant_detail"),
    path("tenants/<slug:slug>/suspend/", console.tenant_suspend, name="tenant_suspend"),
    path("tenants/<slug:slug>/reactivate/", console.tenant_reactivate, name="tenant_reactivate"),
    path("tenants/<slug:slug>/offboard/", console.tenant_offboard, name="tenant_offboard"),
    path(
        "tenants/<slug:slug>/break-glass/",
        breakglass_views.console_request,
        name="break_glass_request",
    ),
    path(
        "tenants/<slug:slug>/break-glass/<int:grant_id>/open/",
        breakglass_views.console_open,
        name="break_glass_open",
    ),
    path(
        "tenants/<slug:slug>/break-glass/<int:grant_id>/end/",
        breakglass_views.console_end,
        name="break_glass_end",
    ),
]
