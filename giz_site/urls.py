from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

from inference import views as inference_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("giz_site.api_urls")),
    path("", include("labeling.urls")),
    path("galaxy/<int:pk>/<str:band>.png", inference_views.galaxy_band, name="galaxy_band"),
]

if settings.GIZ_STORAGE_BACKEND == "local":
    # Media from local storage; a real deployment puts a web server or S3 in front of this.
    urlpatterns.append(
        path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", serve, {"document_root": settings.MEDIA_ROOT})
    )

# Under /api/ these answer the API's JSON error contract; elsewhere Django's HTML pages.
handler400 = "giz_site.error_views.bad_request"
handler404 = "giz_site.error_views.page_not_found"
handler500 = "giz_site.error_views.server_error"
