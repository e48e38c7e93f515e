"""Knowledge-base pages (list with search, create, edit, delete) for the roles that
edit flows, and the allow-list of hosts bot HTTP-request nodes may call (owners,
admins and integrators: ``connectors.manage``, with a fresh one-time code to change it)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm
from bots import selectors, services
from bots.forms import AllowedHostForm, ArticleForm, SearchForm
from parley.forms import add_validation_error

PAGE = 100


@permission_required(Perm.FLOWS_EDIT)
@require_http_methods(["GET", "HEAD"])
def article_list(request):
    search = SearchForm(request.GET or None)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    rows = list(selectors.article_list(by=request.user, query=query)[: PAGE + 1])
    return render(
        request,
        "bots/kb_list.html",
        {
            "articles": rows[:PAGE],
            "more": len(rows) > PAGE,
            "search": search,
            "query": query,
        },
        status=200 if search.is_valid() or not request.GET else 400,
    )


def _initial(article) -> dict:
    return {
        "title": article.title,
        "body": article.body,
        "tags": ", ".join(article.tags),
        "published": article.published,
    }


@permission_required(Perm.FLOWS_EDIT)
@require_http_methods(["GET", "HEAD", "POST"])
def article_new(request):
    form = ArticleForm(request.POST or None, initial={"published": True})
    if request.method == "POST" and form.is_valid():
        try:
            article = services.article_create(by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            _saved(request, article, "created")
            return redirect("kb:article_edit", article_id=article.pk)
    return render(
        request,
        "bots/kb_form.html",
        {"form": form, "article": None},
        status=400 if request.method == "POST" else 200,
    )


def _saved(request, article, verb: str) -> None:
    if article.flagged:
        messages.warning(
            request,
            f"Article {verb}, but flagged: the bot will not use it until the text "
            "no longer reads like instructions.",
        )
    else:
        messages.success(request, f"Article {verb}.")


@permission_required(Perm.FLOWS_EDIT)
@require_http_methods(["GET", "HEAD", "POST"])
def article_edit(request, article_id: int):
    article = selectors.article_get(by=request.user, article_id=article_id)
    form = ArticleForm(request.POST or None, initial=_initial(article))
    if request.method == "POST" and form.is_valid():
        try:
            article = services.article_update(by=request.user, article=article, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            _saved(request, article, "saved")
            return redirect("kb:article_edit", article_id=article.pk)
    return render(
        request,
        "bots/kb_form.html",
        {"form": form, "article": article},
        status=400 if request.method == "POST" else 200,
    )


@permission_required(Perm.FLOWS_EDIT)
@require_http_methods(["GET", "HEAD", "POST"])
def article_delete(request, article_id: int):
    article = selectors.article_get(by=request.user, article_id=article_id)
    if request.method == "POST":
        title = article.title
        services.article_delete(by=request.user, article=article)
        messages.success(request, f"Article “{title}” deleted.")
        return redirect("kb:articles")
    return render(request, "bots/kb_confirm_delete.html", {"article": article})


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_http_methods(["GET", "HEAD", "POST"])
def allowed_hosts(request):
    form = AllowedHostForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            entry = services.allowed_host_add(by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(request, f"{entry.host} may now be called by bot HTTP requests.")
            return redirect("kb:hosts")
    return render(
        request,
        "bots/kb_hosts.html",
        {"hosts": selectors.allowed_host_list(by=request.user), "form": form},
        status=400 if request.method == "POST" else 200,
    )


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def allowed_host_remove(request, host_id: int):
    entry = selectors.allowed_host_list(by=request.user).filter(pk=host_id).first()
    if entry is None:
        messages.error(request, "That host is not on the list.")
    else:
        services.allowed_host_remove(by=request.user, host=entry.host)
        messages.success(
            request, f"{entry.host} removed: flows calling it can no longer be published."
        )
    return redirect("kb:hosts")
