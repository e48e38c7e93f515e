from django.urls import path

from accounts import mfa_views

app_name = "mfa"

urlpatterns = [
    path("mfa/", mfa_views.manage, name="manage"),
    path("mfa/enrol/", mfa_views.enrol, name="enrol"),
    path("mfa/verify/", mfa_views.verify, name="verify"),
    path("mfa/step-up/", mfa_views.step_up, name="step_up"),
    path("mfa/backup-codes/", mfa_views.backup_codes_renew, name="backup_codes"),
    path("mfa/reset/", mfa_views.reset, name="reset"),
]
