from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("users/", views.users, name="users"),
    path("accounts/sign-out-everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("accounts/activate/<uidb64>/<token>/", views.ActivateView.as_view(), name="activate"),
    path("accounts/activated/", views.ActivatedView.as_view(), name="activated"),
]
