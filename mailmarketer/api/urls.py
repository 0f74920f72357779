"""The API object mounted at /api/v1/ (mailmarketer/urls.py). Routers are added here."""

from .base import build_api
from .workspace import router as workspace_router

api = build_api()
api.add_router("", workspace_router)
