from django.urls import path

from tenants import console

app_name = "console"

urlpatterns = [
    path("", console.tenant_list, name="tenant_list"),
    path("tenants/<slug:slug>/", console.tenant_detail, name="tenant_detail"),
    path("tenants/<slug:slug>/suspend/", console.tenant_suspend, name="tenant_suspend"),
    path("tenants/<slug:slug>/reactivate/", console.tenant_reactivate, name="tenant_reactivate"),
    path("tenants/<slug:slug>/offboard/", console.tenant_offboard, name="tenant_offboard"),
]
