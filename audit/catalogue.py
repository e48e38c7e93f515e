"""Every action the audit trail knows. ``record()`` refuses any other name.

Each later capability adds its actions here, with a one-line meaning.
"""

from __future__ import annotations

ACTIONS: dict[str, str] = {
    # authentication
    "auth.login.succeeded": "A user signed in.",
    "auth.login.failed": "A sign-in attempt failed.",
    "auth.logout": "A user signed out.",
    "auth.login.locked": "A sign-in was refused because the account or address is locked.",
    "auth.session.expired": "A session ended by idle timeout or absolute lifetime.",
    "auth.lock_lifted": "An administrator lifted a sign-in lock on an account or address (web, API or `accounts_unlock`).",
    # multi-factor authentication
    "auth.mfa.enrolled": "A user set up an authenticator app (TOTP) and got backup codes.",
    "auth.mfa.verified": "A user completed sign-in with a one-time code.",
    "auth.mfa.failed": "A one-time code was refused.",
    "auth.mfa.step_up": "A user confirmed a one-time code for a sensitive action.",
    "auth.mfa.backup_codes_renewed": "A user replaced their backup codes.",
    "auth.mfa.reset": "A user's MFA devices were removed (they must enrol again).",
    "security.policy_changed": "The workspace's MFA policy changed.",
    # platform: tenants (public chain)
    "tenant.requested": "An operator requested a new tenant from the console.",
    "tenant.created": "A tenant's schema, domain and owner were created.",
    "tenant.provisioning_failed": "Provisioning a requested tenant failed for good.",
    "tenant.suspended": "A tenant was suspended.",
    "tenant.reactivated": "A suspended tenant was reactivated.",
    "tenant.phone_region_changed": "A tenant's default phone region changed (its contacts' phones were re-indexed).",
    # users and roles (tenant chain, public chain for operators)
    "user.created": "A user was created.",
    "user.invite_resent": "A pending invitation was sent again.",
    "user.invite_cancelled": "A pending invitation was withdrawn (the user never signed in).",
    "user.updated": "A user's profile fields changed.",
    "user.role_changed": "A user's role changed.",
    "user.deactivated": "A user was deactivated.",
    "user.reactivated": "A deactivated user was reactivated.",
    "user.password_set": "A user set or changed their password.",
    # the audit trail itself
    "audit.exported": "The audit trail was exported.",
    "audit.sink.created": "A SIEM sink was configured.",
    "audit.sink.updated": "A SIEM sink was changed.",
    "audit.sink.deleted": "A SIEM sink was removed.",
    # keyring and credentials
    "key.rotated": "A tenant data-encryption key was rotated.",
    "key.token_signing_rotated": "A tenant's API token-signing key was rotated (new `kid`).",
    "credential.set": "A connector credential was stored.",
    "credential.replaced": "A connector credential's secret was replaced (rotated).",
    "credential.deleted": "A connector credential was deleted.",
    "credential.used": "A connector credential was decrypted: for one use, or for this process's uses in the next minute (details.reused_for_seconds).",
    "tenant.offboarding_scheduled": "A tenant was closed; its schema and keys go when the retention window ends.",
    "tenant.offboarded": "A tenant's schema was dropped and its keys destroyed (crypto-shredding).",
    # inboxes
    "inbox.created": "An inbox was created.",
    "inbox.updated": "An inbox's channel, assignment, hours or auto-reply changed.",
    "inbox.member_added": "A user became a member of an inbox.",
    "inbox.member_removed": "A user stopped being a member of an inbox.",
    # conversations
    "conversation.created": "A conversation started (a contact wrote in).",
    "conversation.assigned": "A conversation was assigned (by a person or round-robin).",
    "conversation.unassigned": "A conversation lost its assignee.",
    "conversation.replied": "An agent sent a reply (the body is never recorded).",
    "conversation.template_sent": "An agent sent a channel template (its name and language recorded).",
    "conversation.note_added": "An agent added a private note.",
    "conversation.resolved": "A conversation was resolved.",
    "conversation.reopened": "A conversation was reopened.",
    "conversation.snoozed": "A conversation was snoozed until a time.",
    "conversation.labelled": "A conversation's labels changed.",
    "conversation.prioritised": "A conversation's priority changed.",
    "conversation.taken_over": "A person took a conversation over from the bot.",
    "conversation.handed_to_bot": "A conversation was handed back to the bot.",
    "conversation.bot_started": "A bot flow run started on a conversation (flow and run ids).",
    "conversation.bot_replied": "A bot flow sent a message to the customer (message and run ids, never the text).",
    "conversation.bot_finished": "A bot flow run ended and the conversation went back to the people.",
    "bot.handoff": "A bot handed a conversation to a person: the reason code, the note's message id, the run.",
    "canned.created": "A canned response was created.",
    "contact.phones_reindexed": "Every contact's phone was re-normalised (E.164) and re-indexed for a phone region.",
    "contact.searched": "Someone searched contacts (kind of query and result count only).",
    # channels
    "channel.created": "A channel was created and bound to an inbox (an API channel's signing secret shown once; a web chat's allowed sites recorded).",
    "channel.origins_changed": "The sites allowed to embed a web chat were changed (before and after recorded).",
    "channel.enabled": "A paused channel was resumed.",
    "channel.disabled": "A channel was paused (its webhook refuses events).",
    "channel.secret_rotated": "An API channel's signing secret was replaced (the new one shown once).",
    "channel.webhook_refused": "A channel webhook was refused (signature, replay window, size or payload); no payload is recorded.",
    "channel.shared_webhook_refused": "The platform's shared Meta app webhook refused a request (signature, size or payload); no payload is recorded.",
    "channel.shared_webhook_unrouted": "Entries of a shared Meta app webhook named accounts no workspace connected (or paused): dropped; counts and account ids recorded.",
    "channel.route_refused": "A channel on the platform's shared Meta app was refused: the Graph API did not confirm that the workspace's access token reaches the account it named (kind, account id and HTTP status recorded).",
    "channel.tested": "A Meta channel's connection was tested (one Graph API call with its access token): the result code and HTTP status, never the token.",
    "channel.auth_failed": "A channel's credentials were refused by its provider; it is marked unhealthy and its admins were e-mailed.",
    "ai_provider.created": "An AI provider (OpenAI-compatible) was configured: name, base URL, model, limits and the key's last 4 characters.",
    "ai_provider.updated": "An AI provider's settings changed (each field before and after; a new key only as key_replaced).",
    "ai_provider.deleted": "An AI provider was deleted, with its vaulted key.",
    "ai_provider.tested": "An AI provider was tested with one short chat completion: the result code and HTTP status, never the key or the answer.",
    "ai_provider.auth_failed": "An AI provider refused its key (401/403); it is marked unhealthy and the bots stop using it.",
    "message.delivery_failed": "An outbound message could not be delivered through its channel (final).",
    # bot flows and the knowledge base (ids, numbers and names; never a graph or an article's text)
    "flow.created": "A bot flow was created (with its draft v1).",
    "flow.updated": "A bot flow's name, description, inboxes, trigger or state changed (the fields named).",
    "flow.deleted": "A bot flow and its versions were deleted.",
    "flow.draft_created": "A new draft of a flow was started from its live version.",
    "flow.draft_saved": "A flow's draft was saved (the version and node count recorded, never the graph).",
    "flow.published": "A flow's draft was validated and published; the previous version was archived.",
    "flow.rolled_back": "A flow was rolled back: a new version published with an older version's graph.",
    "article.created": "A knowledge-base article was created (whether the screen flagged it, and why).",
    "article.updated": "A knowledge-base article was changed (the fields named, never the text).",
    "article.deleted": "A knowledge-base article was deleted.",
    "bot_host.added": "A host was allowed for bot HTTP-request nodes.",
    "bot_host.removed": "A host was taken off the bot HTTP-request allow-list.",
    # just-in-time access
    "grant.requested": "A user asked for time-bounded access (a role or an inbox).",
    "grant.approved": "A just-in-time access request was approved.",
    "grant.denied": "A just-in-time access request was denied.",
    "grant.revoked": "A just-in-time grant was ended early.",
    "grant.expired": "A just-in-time grant reached its end.",
    # break-glass (both the tenant's chain and the platform's)
    "break_glass.requested": "A platform operator asked a tenant's owners for read-only access.",
    "break_glass.approved": "A tenant owner approved a break-glass request.",
    "break_glass.denied": "A tenant owner denied a break-glass request.",
    "break_glass.emergency_declared": "An operator declared an emergency: read-only access at once, owners mailed.",
    "break_glass.entered": "An operator opened (or was refused) a break-glass session on the tenant's host.",
    "break_glass.ended": "A break-glass grant was ended early (by its operator or an owner).",
    "break_glass.expired": "A break-glass grant reached its deadline.",
    "break_glass.request": "One request made under break-glass (method, path; refused if not read-only).",
    # API tokens
    "auth.token.issued": "A user signed in through the API and got a token pair (a new token family).",
    "auth.token.failed": "An API sign-in was refused (password, one-time code, lockout or MFA enrolment).",
    "auth.token.reuse_detected": "A used refresh token came back: its whole family was revoked.",
    "auth.token.revoked": "A token family was revoked by its user (API sign-out).",
    "auth.token.invalid": "Requests with a bad bearer token were refused (401): aggregated per address and minute, with the count.",
    # access control
    "access.denied": "A request was refused (403).",
    # failures
    "error.unhandled": "A request failed with an unhandled error (500): request id, method and path, never the body.",
    "api.input_refused": "An API body was refused before any view read it (NUL, lone surrogate, huge number, deep nesting); the JSON path is recorded, never the value.",
}


def is_known(action: str) -> bool:
    return action in ACTIONS
