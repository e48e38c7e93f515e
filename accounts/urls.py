from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("users/", views.users, name="users"),
    path("accounts/activate/<uidb64>/<token>/", views.ActivateView.as_view(), name="activate"),
    path("accounts/activated/", views.ActivatedView.as_view(), name="activated"),
]
