"""Audit pages: the viewer (filters, keyset pages, htmx), export, SIEM sinks."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db import connection, transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import step_up_required
from audit import access, selectors, services
from audit.forms import EventFilterForm, ExportForm, SinkForm
from audit.tasks import forward_sink


def _label() -> str:
    tenant = getattr(connection, "tenant", None)
    return (
        "platform"
        if connection.schema_name == "public"
        else getattr(tenant, "slug", connection.schema_name)
    )


def _export_context(form: EventFilterForm) -> dict:
    """The export form carries the filters on screen (hidden, redrawn with the results)."""
    shown = form.cleaned_data if form.is_bound and form.is_valid() else {}
    initial = {name: shown.get(name) for name in ExportForm.FILTERS if shown.get(name)}
    labels = {name: form.fields[name].label or name.capitalize() for name in ExportForm.FILTERS}
    return {
        "export_form": ExportForm(initial=initial, auto_id="export_%s"),
        "export_scope": [f"{labels[name]}: {value}" for name, value in initial.items()],
    }


@access.require(access.VIEW)
def event_list(request):
    form = EventFilterForm(request.GET or None)
    events, next_before, status = [], None, 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        filters = form.to_filter() if form.is_bound else selectors.EventFilter()
        before = form.cleaned_data.get("before") if form.is_bound else None
        events, next_before = selectors.event_page(
            filters, before=before, size=settings.PARLEY_AUDIT_PAGE_SIZE
        )
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "form": form,
        "events": events,
        "next_before": next_before,
        "base_query": query.urlencode(),
        "can_manage_sinks": access.can(request, access.SINKS),
        "partial": bool(request.htmx and not request.htmx.boosted),
        **_export_context(form),
    }
    template = "audit/_events.html" if context["partial"] else "audit/events.html"
    return render(request, template, context, status=status)


@access.require(access.VIEW)
@require_POST
@step_up_required
def export(request):
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Export not started: " + " ".join(str(e) for e in form.errors.values())
        )
        return redirect("audit:events")
    filters = form.to_filter()
    archive, manifest = services.export_archive(
        fmt=form.cleaned_data["format"],
        since=filters.since,
        until=filters.until,
        filters=filters,
        tenant_label=_label(),
    )
    response = HttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{_label()}-{manifest["last_seq"] or 0}.zip"'
    )
    return response


@access.require(access.SINKS)
def sink_list(request):
    form = SinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        sink = services.sink_save(form=form)
        messages.success(request, f"Sink {sink.name} saved; events are forwarded within a minute.")
        return redirect("audit:sinks")
    return render(
        request,
        "audit/sinks.html",
        {"sinks": selectors.sink_list(), "form": form},
        status=400 if request.method == "POST" else 200,
    )


@access.require(access.SINKS)
@require_POST
def sink_delete(request, sink_id: int):
    sink = selectors.sink_get(sink_id)
    services.sink_delete(sink=sink)
    messages.success(request, f"Sink {sink.name} removed.")
    return redirect("audit:sinks")


@access.require(access.SINKS)
@require_POST
def sink_send_now(request, sink_id: int):
    sink = selectors.sink_get(sink_id)
    sink_id = sink.pk
    transaction.on_commit(lambda: forward_sink.delay(sink_id))
    messages.success(request, f"Delivery to {sink.name} queued.")
    return redirect("audit:sinks")
