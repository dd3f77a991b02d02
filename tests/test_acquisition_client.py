"""The SDSS client against the loopback stand-in: URL forms, the field-of-view rule, every fault."""
# ruff: noqa: F811 - pytest fixtures imported from tests.acquisition_fixtures are used as arguments

import io
import urllib.parse
from unittest import mock

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from acquisition.sdss import (
    FieldId,
    RateLimiter,
    SdssClient,
    SdssError,
    cutout_plan,
    cutout_url,
    frame_url,
    parse_rate,
    parse_retry_after,
)
from tests.acquisition_fixtures import standin, standin_server  # noqa: F401


@pytest.fixture
def client(standin):
    return SdssClient(
        cutout_base_url=standin.url, frames_base_url=f"{standin.url}/sas", data_release="dr16", timeout_s=10.0
    )


class TestFieldOfView:
    @pytest.mark.parametrize(
        ("d25", "scale", "size"),
        [
            (1.0, 0.25, 480),  # 2 x 1' = 120" at 0.25"/px
            (4.0, 0.25, 1920),
            (5.0, 0.5, 1200),  # 600" does not fit 2048 px at 0.25"/px: doubled once
            (190.5, 16.0, 1429),  # Andromeda: doubled six times
            (0.1, 0.25, 64),  # tiny: the service's 64 px minimum
            (None, 0.25, 480),  # no size: 1' assumed
        ],
    )
    def test_scale_doubles_from_a_quarter_arcsec_until_the_field_fits(self, d25, scale, size):
        got_scale, got_size, fov = cutout_plan(d25_arcmin=d25)
        assert (got_scale, got_size) == (scale, size)
        assert 64 <= got_size <= 2048
        assert fov == pytest.approx(got_size * got_scale)

    def test_the_url_has_the_skyserver_form(self):
        url = cutout_url(base_url="https://skyserver.sdss.org/", data_release="dr17", ra=10.5, dec=-1.25,
                         scale=0.5, width=512, height=512)  # fmt: skip
        parts = urllib.parse.urlsplit(url)
        assert parts.path == "/dr17/SkyServerWS/ImgCutout/getjpeg"
        query = urllib.parse.parse_qs(parts.query)
        assert {k: v[0] for k, v in query.items()} == {
            "ra": "10.500000", "dec": "-1.250000", "scale": "0.5", "width": "512", "height": "512"
        }  # fmt: skip

    def test_sizes_outside_the_service_limits_are_refused(self):
        with pytest.raises(SdssError) as excinfo:
            cutout_url(base_url="x", data_release="dr16", ra=1, dec=1, scale=1, width=4096, height=512)
        assert excinfo.value.permanent

    def test_frame_url_pads_run_and_field(self):
        url = frame_url(sas_base_url="https://data.sdss.org/sas", data_release="dr17",
                        field=FieldId(run=756, camcol=3, field=42), band="r")  # fmt: skip
        assert url == ("https://data.sdss.org/sas/dr17/eboss/photoObj/frames/301/756/3/frame-r-000756-3-0042.fits.bz2")


class TestCutouts:
    def test_a_cutout_is_a_512_px_colour_stamp_of_the_galaxy(self, client, standin):
        cutout = client.fetch_cutout(ra=150.0, dec=2.0, d25_arcmin=1.0)
        image = Image.open(io.BytesIO(cutout.data))
        assert (image.format, image.size, image.mode) == ("JPEG", (512, 512), "RGB")
        assert cutout.pixel_scale == pytest.approx(120 / 512)
        pixels = np.asarray(image.convert("L"), dtype=float)
        # The galaxy is at the requested position: the centre is far brighter than the corners.
        assert pixels[236:276, 236:276].mean() > 3 * pixels[:40, :40].mean()
        assert "scale=0.25&width=480&height=480" in cutout.url
        assert standin.stats() == {"cutout:ok": 1}

    @pytest.mark.parametrize(
        ("fault", "permanent", "reason"),
        [
            ("500", False, "HTTP 500"),
            ("503", False, "HTTP 503"),
            ("404", True, "HTTP 404"),
            ("slow", False, "timed out after 1s"),
            ("reset", False, "connection failed"),
            ("truncated", False, "truncated"),
            ("html", False, "HTML instead of an image"),
            ("blank", False, "blank image: the position is outside the SDSS footprint"),
            ("wrong_size", True, "image of the wrong size: 241x480, asked for 480x480"),
        ],
    )
    def test_each_fault_is_classified_permanent_or_transient(self, client, standin, fault, permanent, reason):
        standin.faults(next=[fault], retry_after=7, slow_s=1.5)
        client.timeout = (1.0, 1.0)  # the answer itself is cached: only the slow fault takes longer
        with pytest.raises(SdssError) as excinfo:
            client.fetch_cutout(ra=150.0, dec=2.0, d25_arcmin=1.0)
        assert excinfo.value.permanent is permanent
        assert reason in excinfo.value.reason
        assert str(excinfo.value).startswith("permanent: " if permanent else "transient: ")
        if fault == "503":
            assert excinfo.value.retry_after == 7
        # The next request, without a fault, works: the client recovers from every failure.
        assert len(client.fetch_cutout(ra=150.0, dec=2.0, d25_arcmin=1.0).data) > 1000

    def test_a_blank_image_is_marked_blank_not_permanent(self, client):
        # Outside the footprint, or a transient hiccup of the server: the caller retries a few times to tell.
        with pytest.raises(SdssError, match="outside the SDSS footprint") as excinfo:
            client.fetch_cutout(ra=150.0, dec=-60.0, d25_arcmin=1.0)
        assert excinfo.value.blank and not excinfo.value.permanent

    @pytest.mark.parametrize(("ra", "dec"), [(360.0, 0.0), (-1.0, 0.0), (10.0, 91.0), (float("nan"), 0.0)])
    def test_invalid_coordinates_are_permanent_and_never_sent(self, client, standin, ra, dec):
        with pytest.raises(SdssError, match="invalid coordinates") as excinfo:
            client.fetch_cutout(ra=ra, dec=dec, d25_arcmin=1.0)
        assert excinfo.value.permanent
        assert standin.stats() == {}

    def test_nothing_listening_is_transient(self):
        client = SdssClient(cutout_base_url="http://127.0.0.1:9", frames_base_url="x", data_release="dr16",
                            timeout_s=1)  # fmt: skip
        with pytest.raises(SdssError, match="connection failed") as excinfo:
            client.fetch_cutout(ra=1.0, dec=1.0, d25_arcmin=1.0)
        assert not excinfo.value.permanent

    def test_retry_after_in_http_date_form(self):
        assert parse_retry_after("120") == 120
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
        assert parse_retry_after("soon") is None


class TestFitsStamps:
    def test_a_band_stamp_is_cut_from_the_frame_with_its_wcs(self, client, standin):
        client.timeout = (5, 30)  # the stand-in renders a whole frame first
        field = client.find_field(ra=150.0, dec=2.0)
        stamp = client.fetch_fits_stamp(ra=150.0, dec=2.0, d25_arcmin=1.0, band="r", field=field)
        with fits.open(io.BytesIO(stamp.data)) as hdus:
            data, header = hdus[0].data, hdus[0].header
        assert data.shape == (303, 303)  # 120" at the native 0.396"/px
        assert header["BAND"] == "r"
        centre = WCS(header).world_to_pixel_values(150.0, 2.0)
        assert centre == pytest.approx((151, 151), abs=1.0)
        assert data[141:161, 141:161].mean() > 5 * np.median(np.abs(data[:30, :30])) + 1e-6
        assert "frame-r-002500-3-0920.fits.bz2" in stamp.url

    def test_no_field_outside_the_footprint(self, client):
        with pytest.raises(SdssError, match="no SDSS imaging field") as excinfo:
            client.find_field(ra=150.0, dec=-60.0)
        assert excinfo.value.permanent


class TestSystemChecks:
    @pytest.mark.parametrize(
        ("name", "value", "error"),
        [
            ("GIZ_SDSS_CUTOUT_BASE_URL", "skyserver.sdss.org", "giz.acquisition.E001"),
            ("GIZ_SDSS_RATE_LIMIT", "fast", "giz.acquisition.E002"),
            ("GIZ_SDSS_DATA_RELEASE", "16", "giz.acquisition.E003"),
        ],
    )
    def test_bad_sdss_settings_are_reported(self, settings, name, value, error):
        from django.core.management import call_command

        setattr(settings, name, value)
        with pytest.raises(Exception) as excinfo:
            call_command("check")
        assert error in str(excinfo.value)
        assert name in str(excinfo.value)


class TestRateLimit:
    @pytest.mark.parametrize(
        ("text", "per_second"), [("10/s", 10), ("300/m", 5), ("7200/h", 2), ("0", None), ("", None)]
    )
    def test_rates_parse(self, text, per_second):
        assert parse_rate(text) == per_second

    @pytest.mark.parametrize("text", ["fast", "10", "10/d", "-1/s"])
    def test_bad_rates_are_refused(self, text):
        with pytest.raises(ValueError, match="not a rate"):
            parse_rate(text)

    def test_requests_are_spaced_by_the_rate(self):
        now = [100.0]
        slept = []

        def sleep(seconds):
            slept.append(seconds)
            now[0] += seconds

        limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
        for _ in range(5):
            limiter.wait()
        assert slept == [0.25, 0.25, 0.25, 0.25]  # the first goes at once, then one every 1/4 s
        now[0] += 10  # idle time is not saved up into a burst
        limiter.wait()
        limiter.wait()
        assert slept[-1] == 0.25 and len(slept) == 5

    def test_the_client_waits_its_turn_before_each_request(self, standin):
        client = SdssClient(cutout_base_url=standin.url, frames_base_url="x", data_release="dr16", timeout_s=10,
                            rate_limit_per_s=1000)  # fmt: skip
        with mock.patch.object(client.limiter, "wait", wraps=client.limiter.wait) as wait:
            client.fetch_cutout(ra=150.0, dec=2.0, d25_arcmin=1.0)
            client.find_field(ra=150.0, dec=2.0)
        assert wait.call_count == 2
