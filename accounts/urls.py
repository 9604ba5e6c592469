from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("team/", views.team, name="accounts_team"),
    path("team/invite/", views.team_invite, name="accounts_team_invite"),
    path("team/mfa/", views.team_mfa_requirement, name="accounts_team_mfa"),
    path("team/members/<int:membership_id>/role/", views.team_member_role, name="accounts_member_role"),
    path("team/members/<int:membership_id>/remove/", views.team_member_remove, name="accounts_member_remove"),
    path(
        "team/invitations/<int:invitation_id>/revoke/", views.team_invitation_revoke, name="accounts_invitation_revoke"
    ),
    path("settings/", views.account_settings, name="accounts_settings"),
    path("settings/organization/", views.organization_settings, name="accounts_organization_settings"),
    path("invitations/<str:token>/", views.invitation, name="accounts_invitation"),
]
