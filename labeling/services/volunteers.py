"""Volunteer accounts and profiles."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labeling.models import (
    VolunteerProfile,
)


def volunteer_profile_get(*, user: AbstractBaseUser) -> VolunteerProfile:
    """The volunteer's profile, created on first use (the personas and admin-made users have none yet)."""
    profile, _ = VolunteerProfile.objects.get_or_create(user=user)
    return profile


@transaction.atomic
def volunteer_register(*, username: str, email: str, password: str, display_name: str = "") -> AbstractBaseUser:
    """Create a volunteer account with its profile (the caller has validated the password)."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    VolunteerProfile.objects.create(user=user, display_name=display_name, show_on_leaderboard=bool(display_name))
    return user


def volunteer_profile_update(
    *, user: AbstractBaseUser, display_name: str, show_on_leaderboard: bool
) -> VolunteerProfile:
    profile = volunteer_profile_get(user=user)
    profile.display_name = display_name.strip()
    profile.show_on_leaderboard = show_on_leaderboard and bool(profile.display_name)
    profile.save(update_fields=["display_name", "show_on_leaderboard"])
    return profile


def volunteer_tutorial_done(*, user: AbstractBaseUser) -> None:
    VolunteerProfile.objects.filter(user=user).update(tutorial_done=True)
