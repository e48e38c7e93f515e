from django import forms


class TenantCreateForm(forms.Form):
    slug = forms.CharField(
        max_length=40, help_text="3-40 lowercase letters, digits, hyphens; e.g. acme"
    )
    name = forms.CharField(max_length=120)
    domain = forms.CharField(max_length=253, help_text="e.g. acme.localhost")
    owner_email = forms.EmailField(label="Owner e-mail")


class TenantSuspendForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)


class TenantOffboardForm(forms.Form):
    confirm = forms.CharField(max_length=40, label="Type the slug to confirm")
