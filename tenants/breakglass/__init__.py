"""Break-glass: a platform operator's read-only, time-limited access to one tenant.

The flow:

1. On the console, an operator (fresh step-up) requests access to a tenant with a
   reason and a duration (:func:`break_glass_request`). The tenant's owners are
   mailed. A normal request waits for an owner; an *emergency* is active at
   once and the mail says so.
2. An owner approves (:func:`break_glass_approve`, the clock starts now) or
   denies it on the tenant's ``/settings/break-glass/`` page (fresh step-up).
3. "Open read-only" on the console issues a signed hand-off (:func:`handoff_issue`)
   valid for 60 seconds and once; the tenant's ``/break-glass/enter/`` redeems
   it (:func:`handoff_redeem`) and starts a tenant session that holds nothing
   but the grant's id.
4. :class:`BreakGlassMiddleware` checks the grant on every request of such a
   session (ended, expired, other tenant, tenant not active: the session ends),
   stands the operator in as a read-only :class:`BreakGlassUser`, refuses every
   unsafe method, and records each request in the tenant's trail and the
   platform's.
5. A beat task (:func:`break_glass_expire_due`) marks grants past their
   deadline ``expired``; the middleware enforces the deadline without it.

Grants live in ``public`` (the operator does); their operator is a user of the
public schema, so every read that touches ``operator`` runs in that schema (in a
tenant's search path ``accounts_user`` is the tenant's own table).

The package, by what each part does: ``identity`` (who acts: the read-only
stand-in user, audit actors), ``selectors`` (reads), ``trail`` (one event on
both trails), ``services`` (request, decide, end, expire), ``forms``,
``handoff`` (console → tenant host, session start), ``middleware`` (every
request of a break-glass session), ``context`` (template banner), ``views``
and ``urls``.
"""
