"""API authentication: exchange a username and password for a token; errors for unknown API URLs."""

from django.contrib.auth import authenticate
from django.urls import Resolver404, resolve
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from giz_site.api_permissions import IsVolunteer
from giz_site.exceptions import ApplicationError


class TokenObtainApi(APIView):
    """POST a username and password, get the account's API token (created on first use).

    Staff can also create tokens with `manage.py drf_create_token <username>` or in the admin (Tokens).
    """

    permission_classes = [AllowAny]
    authentication_classes = []  # a stale token or session must not get in the way of logging in

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})

        class Meta:
            ref_name = "TokenObtainInput"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text='Send as the header "Authorization: Token <token>".')
        username = serializers.CharField()
        is_staff = serializers.BooleanField()

        class Meta:
            ref_name = "TokenObtainOutput"

    @extend_schema(operation_id="auth_token_create", request=InputSerializer, responses=OutputSerializer, tags=["auth"])
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request._request, **serializer.validated_data)
        if user is None or not user.is_active:
            raise ApplicationError(
                "Unknown username or wrong password.",
                code="invalid_credentials",
                status_code=status.HTTP_400_BAD_REQUEST,
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response(
            self.OutputSerializer({"token": token.key, "username": user.get_username(), "is_staff": user.is_staff}).data
        )


class TokenRevokeApi(APIView):
    """DELETE the token used for this request (log an API client out); a new POST makes a fresh one."""

    permission_classes = [IsVolunteer]

    @extend_schema(operation_id="auth_token_destroy", responses={204: None}, tags=["auth"])
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(exclude=True)
class ApiNotFound(APIView):
    """Unknown URLs under /api/ answer 404 in the error format rather than an HTML page."""

    permission_classes = [AllowAny]
    authentication_classes = []

    def dispatch_not_found(self, request, *args, **kwargs):
        if not request.path.endswith("/"):
            try:
                match = resolve(request.path + "/")
            except Resolver404:
                match = None
            if match is not None and match.url_name != "not-found":
                raise NotFound(f"No API endpoint at this URL; did you mean {request.path}/ (with a slash)?")
        raise NotFound("No API endpoint at this URL; see /api/docs/.")

    get = post = put = patch = delete = dispatch_not_found

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if request_is_compat(self.request) and isinstance(response.data, dict) and "error" in response.data:
            # Under the original service's URLs keep its failure keys too, e.g. /api/pgc/not-a-number.
            response.data = {"status": "failed", "message": response.data["error"]["message"], **response.data}
        return response


COMPAT_PREFIXES = ("/api/pgc/", "/api/objname/", "/api/file")


def request_is_compat(request) -> bool:
    """Whether the request is for one of the original IncliNET service's URLs (the compatibility layer)."""
    return request.path.startswith(COMPAT_PREFIXES)
