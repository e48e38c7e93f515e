from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("audit/", views.event_list, name="events"),
    path("audit/export/", views.export, name="export"),
    path("audit/sinks/", views.sink_list, name="sinks"),
    path("audit/sinks/<int:sink_id>/delete/", views.sink_delete, name="sink_delete"),
    path("audit/sinks/<int:sink_id>/send/", views.sink_send_now, name="sink_send"),
]
