from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("users/", views.users, name="users"),
    path("users/invite/", views.user_invite, name="user_invite"),
    path("users/<int:user_id>/role/", views.user_role, name="user_role"),
    path("users/<int:invited_id>/resend/", views.user_invite_resend, name="user_invite_resend"),
    path("users/<int:invited_id>/cancel/", views.user_invite_cancel, name="user_invite_cancel"),
    path("users/<int:user_id>/active/", views.user_active, name="user_active"),
    path("users/<int:user_id>/mfa-reset/", views.user_mfa_reset, name="user_mfa_reset"),
    path("users/<int:user_id>/unlock/", views.user_unlock, name="user_unlock"),
    path("settings/mfa/", views.mfa_policy, name="mfa_policy"),
    path("access/", views.access, name="access"),
    path("access/<int:grant_id>/decide/", views.access_decide, name="access_decide"),
    path("access/<int:grant_id>/revoke/", views.access_revoke, name="access_revoke"),
    path("accounts/sign-out-everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("accounts/activate/<uidb64>/<token>/", views.ActivateView.as_view(), name="activate"),
    path("accounts/activated/", views.ActivatedView.as_view(), name="activated"),
]
