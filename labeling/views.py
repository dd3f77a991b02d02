"""Pages of the volunteer website: thin wrappers around labeling.services and labeling.selectors.

A vote is read by the API's serializer and refused with the API's errors; the Reshuffle button calls the API.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework import serializers

from giz_site.exceptions import ApplicationError, invalid_input
from labeling import selectors, services
from labeling.apis import VoteInputSerializer
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


class FeedbackQuerySerializer(serializers.Serializer):
    feedback = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


@login_required
def label(request):
    query = FeedbackQuerySerializer(data={k: v for k, v in request.GET.items() if k == "feedback" and v})
    if not query.is_valid():
        messages.error(request, "The link to your gold-galaxy feedback is not valid; here is the next galaxy.")
        return _label_page(request, status=400)
    feedback = None
    if "feedback" in query.validated_data:
        vote = selectors.votes_of(volunteer=request.user).filter(pk=query.validated_data["feedback"]).first()
        feedback = selectors.gold_feedback(vote=vote) if vote else None
    return _label_page(request, feedback=feedback)


# The form's names for fields the API calls *_id; an empty form field means "not given".
FORM_FIELDS = {"left_standard": "left_standard_id", "right_standard": "right_standard_id"}


def _vote_input(form) -> dict:
    """The page's form through the API's vote serializer; raises ApplicationError as the API would answer."""
    data = {FORM_FIELDS.get(name, name): value for name, value in form.items() if value != ""}
    serializer = VoteInputSerializer(data=data)
    if not serializer.is_valid():
        raise invalid_input(serializer.errors)
    return serializer.validated_data


@login_required
@require_POST
def vote(request):
    try:
        answer = _vote_input(request.POST)
        # The page echoes the galaxy it showed: a form for another galaxy is a tampered or stale one.
        served = selectors.assignment_galaxy_id(volunteer=request.user, token=answer["token"])
        if served is not None and request.POST.get("galaxy", "") != str(served):
            raise ApplicationError(
                "This form was for a different galaxy than the one served to you; nothing was saved.",
                code="galaxy_not_served",
            )
        result = services.vote_submit(volunteer=request.user, **answer)
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
def tutorial_done(request):
    services.volunteer_tutorial_done(user=request.user)
    return JsonResponse({"tutorial_done": True})


# ------------------------------------------------------------------------------ Errors


def csrf_failure(request, reason: str = ""):
    """A missing or stale security token: say what happened and how to go on, save nothing."""
    return render(request, "labeling/csrf_failure.html", {"reason": reason}, status=403)
