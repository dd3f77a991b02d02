"""Who may call what: anyone reads public data, volunteers vote, staff run the platform."""

from rest_framework.permissions import BasePermission


class IsStaff(BasePermission):
    """Staff members only (model uploads and activation, alarms, acquisition)."""

    message = "Only staff members may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class IsVolunteer(BasePermission):
    """Any signed-in, active account: every account is a volunteer."""

    message = "Sign in (session or token) to do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_active)
