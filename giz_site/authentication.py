"""How API requests authenticate: DRF's token and session authentication, the token's lookup written out.

Kept apart from the API views: DRF imports authentication classes while it sets up its views.
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token


@cache
def _token_user_sql() -> tuple[str, list[str]]:
    """The statement that reads a token's user, and the user's field names in its column order."""
    user_model = get_user_model()
    fields = list(user_model._meta.concrete_fields)
    columns = ", ".join(f"u.{connection.ops.quote_name(f.column)}" for f in fields)
    sql = (
        f"SELECT t.created, {columns} FROM {Token._meta.db_table} t "
        f"JOIN {user_model._meta.db_table} u ON u.{user_model._meta.pk.column} = t.user_id "
        f"WHERE t.{connection.ops.quote_name('key')} = %s"
    )
    return sql, [f.attname for f in fields]


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication (same header, answers and checks) with its lookup written out.

    Every API request reads its token and user: building that join with the ORM cost more CPU than running it.
    Nothing is kept between requests, so a deleted token or a deactivated account is refused at once.
    """

    def authenticate_credentials(self, key):
        sql, names = _token_user_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = get_user_model().from_db(connection.alias, names, row[1:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = Token(key=key, user=user, created=row[0])
        token._state.adding, token._state.db = False, connection.alias
        return user, token
