"""HTTP for /blocklists (Rebilly's, types email and email-domain)."""

from fastapi import APIRouter

router = APIRouter(prefix="/blocklists", tags=["Blocklists"])
