"""The flow editor's pages (the API they call is bots.api_urls)."""

from django.urls import path

from bots import views

app_name = "bots"

urlpatterns = [
    path("flows/", views.flow_list, name="flows"),
    path("flows/<int:flow_id>/", views.flow_editor, name="flow_editor"),
]
