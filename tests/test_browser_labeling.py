"""The labeling website in a real headless Chromium: sign up, vote by mouse and by keyboard, flag, gold feedback.

Screenshots go to test-artifacts/browser/ (kept by CI as artefacts).
"""

import os
import shutil
from pathlib import Path

import pytest

from labeling import services
from labeling.models import Vote
from tests.labeling_fixtures import make_galaxy, make_gold, make_standards

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's sync API runs an event loop
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromium") and not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def same_size(page, one: str, other: str) -> bool:
    """Whether the first elements matching the two selectors are drawn at the same size (CSS pixels)."""
    a, b = page.locator(one).first.bounding_box(), page.locator(other).first.bounding_box()
    return round(a["width"]) == round(b["width"]) and round(a["height"]) == round(b["height"])


def sign_up(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.org")
    page.fill("#id_display_name", username.title())
    page.fill("#id_password1", "a-long-Passphrase-42")
    page.fill("#id_password2", "a-long-Passphrase-42")
    shot(page, f"00-signup-{username}")
    page.click("button[type=submit]")
    page.wait_for_url("**/label/")


def test_volunteer_signs_up_and_labels_with_mouse_keyboard_flags_and_gold(browser, live_server, monkeypatch):
    monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 0.0),))
    # Galaxies and standards drawn at assorted position angles: the page must show them all level.
    make_standards(size=160, position_angles=(10.0, 40.0, 75.0, 120.0, 160.0))
    for inclination, angle in ((62.0, 35.0), (75.0, 140.0), (50.0, 100.0)):
        make_galaxy(inclination=inclination, position_angle=angle, size=160)
    make_gold(known=66.0, position_angle=55.0, size=160)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/")
    shot(page, "00-home")
    sign_up(page, live_server, "vera")

    # First visit: the short tour, then step 1.
    assert page.is_visible("#tutorial")
    shot(page, "01-tutorial")
    page.click("#tutorial-done")
    assert page.is_hidden("#tutorial")
    shot(page, "02-step1")

    # Reshuffle calls the API with the session and its CSRF header; the strip is drawn again from the answer.
    with page.expect_response("**/api/assignments/reshuffle/") as reshuffled:
        page.click("#reshuffle")
    assert reshuffled.value.status == 200, reshuffled.value.text()
    page.wait_for_selector(".strip.step1 .standard img")
    assert page.text_content("#answer") == "No answer yet."

    # Every image turned major axis horizontal; the target travels along the strip at the standards' size.
    assert page.get_attribute("#target-img", "src").endswith("_horizontal.jpg")
    assert all(
        src.endswith("_horizontal.jpg") for src in page.eval_on_selector_all(".strip img", "l => l.map(i => i.src)")
    )
    assert same_size(page, ".strip .gap.cursor img", ".strip .standard img")

    # A two-step vote with the mouse: between 60 and 65, then between 62 and 63.
    page.click(".strip.step1 .gap[data-gap='4']")
    assert "Refine between 60° and 65°" in page.text_content("#step-title")
    assert same_size(page, ".strip.step2 .gap.cursor img", ".strip.step2 .standard img")
    shot(page, "02-step2-turned")
    # U (or the button) shows every image as observed, and back.
    page.keyboard.press("u")
    assert page.get_attribute("#unrotated", "aria-pressed") == "true"
    assert not page.get_attribute("#target-img", "src").endswith("_horizontal.jpg")
    assert not any(
        src.endswith("_horizontal.jpg") for src in page.eval_on_selector_all(".strip img", "l => l.map(i => i.src)")
    )
    page.wait_for_function("[...document.querySelectorAll('.strip img')].every(i => i.complete)")
    shot(page, "02-step2-unrotated")
    page.click("#unrotated")
    assert page.get_attribute("#target-img", "src").endswith("_horizontal.jpg")
    page.click(".strip.step2 .gap[data-gap='3']")
    assert "62.5°" in page.text_content("#answer")
    page.click("[data-view='r']")
    page.click("#invert")
    shot(page, "03-step2-placed-inverted-r")
    page.click("#send")
    page.wait_for_selector(".messages .success >> text=Recorded 62.5°")
    first = Vote.objects.get(volunteer__username="vera")
    assert first.inclination == pytest.approx(62.5) and first.seconds_taken > 0

    # A vote with the keyboard only: three gaps right (60-65), Enter, Enter (61-62), Enter to send.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert "61.5°" in page.text_content("#answer")
    page.keyboard.press("n")
    page.keyboard.press("Enter")
    page.wait_for_selector(".messages .success >> text=Recorded 61.5°")
    second = Vote.objects.filter(volunteer__username="vera").order_by("created_at").last()
    assert (second.inclination, second.not_sure) == (pytest.approx(61.5), True)

    # A flag instead of an inclination, with a note.
    page.click(".flag[data-flag='multiple_objects']")
    page.fill("#f-note", "two overlapping discs")
    shot(page, "04-flagged")
    page.click("#send")
    page.wait_for_selector(".messages .success >> text=multiple objects")
    flagged = Vote.objects.filter(volunteer__username="vera").order_by("created_at").last()
    assert (flagged.flag, flagged.inclination, flagged.note) == ("multiple_objects", None, "two overlapping discs")

    # A gold galaxy: immediate feedback with the known value and the bracketing standards.
    monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 1.0),))
    page.goto(f"{live_server.url}/label/")
    page.click(".strip.step1 .gap[data-gap='5']")  # 65-70
    page.click(".strip.step2 .gap[data-gap='2']")  # 66-67 -> 66.5
    page.click("#send")
    page.wait_for_selector("#feedback")
    feedback = page.text_content("#feedback")
    assert "66.0°" in feedback and "66.5°" in feedback and "0.5° away" in feedback
    assert page.locator("#feedback .feedback-row img").count() == 3
    shot(page, "05-gold-feedback")
    assert Vote.objects.filter(volunteer__username="vera").count() == 4

    # The profile shows the volunteer's own figures.
    page.click("#feedback-next")
    page.click("a.who")
    assert page.text_content("#fig-votes").strip() == "4"
    assert page.text_content("#fig-gold").strip() == "0.5°"
    shot(page, "08-profile")
    assert errors == []
    context.close()


def test_labeling_works_on_a_phone(browser, live_server):
    make_standards()
    make_galaxy(inclination=70.0)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True)
    page = context.new_page()
    sign_up(page, live_server, "pia")
    page.tap("#tutorial-done")
    # Nothing may stick out sideways except the strip, which scrolls.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "06-phone-step1")
    page.locator(".strip.step1 .gap[data-gap='5']").tap()
    page.locator(".strip.step2 .gap[data-gap='4']").tap()
    assert "68.5°" in page.text_content("#answer")
    shot(page, "07-phone-step2")
    page.tap("#send")
    page.wait_for_selector(".messages .success >> text=Recorded 68.5°")
    assert Vote.objects.get(volunteer__username="pia").inclination == pytest.approx(68.5)
    context.close()
