"""The embedded default: SQLite, filesystem broker and media in the data folder; no server needed."""

from giz_site.settings.base import *  # noqa: F403
