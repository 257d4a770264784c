"""/docs and /redoc load nothing from another host: their scripts and styles are served here, so
they work on a host with no way out."""

import re

import httpx
import pytest

_ASSET = re.compile(r"""(?:src|href)=["']?([^"' >]+)""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_documentation_pages_load_only_their_own_assets(
    anonymous: httpx.AsyncClient, page: str
) -> None:
    response = await anonymous.get(page)
    assert response.status_code == 200
    assets = _ASSET.findall(response.text)
    assert assets, response.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        loaded = await anonymous.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.content
    assert "openapi.json" in response.text
