"""The API object mounted at /api/v1/ (mailmarketer/urls.py). Routers are added here."""

from .base import build_api
from .bounces import router as bounces_router
from .campaigns import router as campaigns_router
from .events import router as events_router
from .forms import router as forms_router
from .imports import router as imports_router
from .leads import router as leads_router
from .lists import router as lists_router
from .reports import router as reports_router
from .segments import router as segments_router
from .senders import router as senders_router
from .sites import router as sites_router
from .subscribers import router as subscribers_router
from .workspace import router as workspace_router

api = build_api()
api.add_router("", workspace_router)
api.add_router("", subscribers_router)
api.add_router("", lists_router)
api.add_router("", segments_router)
api.add_router("", imports_router)
api.add_router("", senders_router)
api.add_router("", campaigns_router)
api.add_router("", forms_router)
api.add_router("", events_router)
api.add_router("", bounces_router)
api.add_router("", reports_router)
api.add_router("", leads_router)
api.add_router("", sites_router)
