from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/signup/", views.signup, name="signup"),
    path("profile/", views.profile, name="profile"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("label/", views.label, name="label"),
    path("label/vote/", views.vote, name="vote"),
    path("label/tutorial-done/", views.tutorial_done, name="tutorial_done"),
]
