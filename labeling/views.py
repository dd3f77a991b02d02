"""Pages of the volunteer website: thin wrappers around labeling.services and labeling.selectors."""

import json
import math

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from giz_site.exceptions import ApplicationError, error_body
from labeling import selectors, services
from labeling.models import Vote

FLAG_CHOICES = [(value, label) for value, label in Vote.Flag.choices if value not in ("", "face_on")]


# ------------------------------------------------------------------------------ Accounts


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Only for password resets; never shown.")
    display_name = forms.CharField(
        max_length=64, required=False, help_text="Optional: the name shown on the leaderboard."
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username", "email"]


class ProfileForm(forms.Form):
    display_name = forms.CharField(max_length=64, required=False)
    show_on_leaderboard = forms.BooleanField(required=False, label="Show me on the leaderboard")


def home(request):
    return render(request, "labeling/home.html", {"leaders": selectors.leaderboard(limit=5)})


def signup(request):
    if request.user.is_authenticated:
        return redirect("label")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.volunteer_register(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            display_name=form.cleaned_data["display_name"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome aboard! A short tour comes first.")
        return redirect("label")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def profile(request):
    current = services.volunteer_profile_get(user=request.user)
    form = ProfileForm(
        request.POST or None,
        initial={"display_name": current.display_name, "show_on_leaderboard": current.show_on_leaderboard},
    )
    if request.method == "POST" and form.is_valid():
        services.volunteer_profile_update(user=request.user, **form.cleaned_data)
        messages.success(request, "Profile saved.")
        return redirect("profile")
    figures = selectors.volunteer_figures(volunteer=request.user)
    recent = selectors.votes_of(volunteer=request.user)[:10]
    return render(request, "labeling/profile.html", {"form": form, "figures": figures, "recent": recent})


def leaderboard(request):
    return render(request, "labeling/leaderboard.html", {"leaders": selectors.leaderboard(limit=50)})


# ------------------------------------------------------------------------------ Labeling


def _label_page(request, *, status: int = 200, feedback: dict | None = None):
    assignment = services.assignment_next(volunteer=request.user)
    context = {"assignment": assignment, "feedback": feedback, "flags": FLAG_CHOICES}
    if assignment is not None:
        profile = services.volunteer_profile_get(user=request.user)
        context["page_data"] = selectors.assignment_page_data(assignment=assignment)
        context["show_tutorial"] = not profile.tutorial_done
    return render(request, "labeling/label.html", context, status=status)


@login_required
def label(request):
    feedback = None
    vote_id = request.GET.get("feedback", "")
    if vote_id.isdigit():
        vote = selectors.votes_of(volunteer=request.user).filter(pk=int(vote_id)).first()
        feedback = selectors.gold_feedback(vote=vote) if vote else None
    return _label_page(request, feedback=feedback)


def _optional_float(value: str, what: str) -> float | None:
    if value in ("", None):
        return None
    try:
        number = float(value)
    except ValueError:
        raise ApplicationError(f"The {what} is not a number.", code="invalid_number") from None
    if not math.isfinite(number):
        raise ApplicationError(f"The {what} is not a number.", code="invalid_number")
    return number


def _optional_int(value: str, what: str) -> int | None:
    if value in ("", None):
        return None
    if not value.isdigit():
        raise ApplicationError(f"The {what} is not valid.", code="invalid_id")
    return int(value)


@login_required
@require_POST
def vote(request):
    data = request.POST
    try:
        # The page echoes the galaxy it showed: a form for another galaxy is a tampered or stale one.
        served = selectors.assignment_galaxy_id(volunteer=request.user, token=data.get("token", ""))
        if served is not None and data.get("galaxy", "") != str(served):
            raise ApplicationError(
                "This form was for a different galaxy than the one served to you; nothing was saved.",
                code="galaxy_not_served",
            )
        result = services.vote_submit(
            volunteer=request.user,
            token=data.get("token", ""),
            inclination=_optional_float(data.get("inclination", ""), "inclination"),
            flag=data.get("flag", ""),
            not_sure=data.get("not_sure", "") in ("1", "on", "true"),
            note=data.get("note", ""),
            left_standard_id=_optional_int(data.get("left_standard", ""), "left standard"),
            right_standard_id=_optional_int(data.get("right_standard", ""), "right standard"),
            seconds_taken=_optional_float(data.get("seconds_taken", ""), "time taken"),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return _label_page(request, status=error.status_code)
    if result.was_gold:
        return HttpResponseRedirect(f"{reverse('label')}?feedback={result.pk}")
    answer = f"{result.inclination:.1f}°" if result.inclination is not None else result.get_flag_display().lower()
    messages.success(request, f"Thanks! Recorded {answer} for {result.galaxy}.")
    return redirect("label")


@login_required
@require_POST
def reshuffle(request):
    try:
        body = json.loads(request.body or b"{}")
        degrees = [int(d) for d in body.get("degrees", [])]
        drawn = services.assignment_reshuffle(volunteer=request.user, token=str(body.get("token", "")), degrees=degrees)
    except (ValueError, TypeError, AttributeError):
        return JsonResponse(error_body(code="invalid", message="Send {token, degrees: [45, 50, ...]}."), status=400)
    except ApplicationError as error:
        return JsonResponse(error_body(code=error.code, message=error.message), status=error.status_code)
    shown = selectors.standards_shown(standard_ids=drawn.values())
    return JsonResponse({"standards": {str(d): shown[sid] for d, sid in drawn.items() if sid in shown}})


@login_required
@require_POST
def tutorial_done(request):
    services.volunteer_tutorial_done(user=request.user)
    return JsonResponse({"tutorial_done": True})


# ------------------------------------------------------------------------------ Errors


def csrf_failure(request, reason: str = ""):
    """A missing or stale security token: say what happened and how to go on, save nothing."""
    return render(request, "labeling/csrf_failure.html", {"reason": reason}, status=403)
