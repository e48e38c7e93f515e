"""Contacts (more of the inbox arrives with the conversations issue).

Contact PII is encrypted per field, bound to the row; phone and e-mail also
carry blind indexes (HMAC under the tenant's blind-index key) so a contact is
found by equality without decrypting anyone.
"""

from __future__ import annotations

from django.db import connection, models


class Contact(models.Model):
    id = models.BigAutoField(primary_key=True)
    name_ct = models.BinaryField(null=True)
    phone_ct = models.BinaryField(null=True)
    email_ct = models.BinaryField(null=True)
    phone_bi = models.CharField(max_length=32, blank=True, db_index=True)
    email_bi = models.CharField(max_length=32, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"contact #{self.pk}"

    def allocate_pk(self) -> int:
        if self.pk is None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence('conversations_contact', 'id'))"
                )
                self.pk = cursor.fetchone()[0]
        return self.pk


class Inbox(models.Model):
    """Where conversations of one channel land. Agents work an inbox they are members of.

    Membership is a django-guardian object permission (``work_inbox``) held by
    the user; owners and admins see every inbox. Channel binding, assignment
    policy and business hours arrive with the conversations issue.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("work_inbox", "Work the conversations of this inbox")]
        default_permissions = ()

    def __str__(self) -> str:
        return self.name
