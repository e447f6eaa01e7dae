"""The web shell's pages: who gets them, their headers, and the routes they never shadow."""

from __future__ import annotations

from in_process import InProcess

from charmspace.identity import Identity


async def test_pages_send_visitors_without_a_session_to_the_login_page(served: InProcess) -> None:
    async with served.raw() as browser:
        for path in ("/", f"/{Identity.generate().did}", f"/{Identity.generate().did}/of:x"):
            response = await browser.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/login"
        login = await browser.get("/login")
        assert login.status_code == 200
        assert "one-time link" in login.text
        assert "<script>" not in login.text  # the only script is the module file


async def test_a_logged_in_browser_gets_pages_with_a_strict_policy(served: InProcess) -> None:
    token = served.app.state.sessions.login_token(Identity.generate().did)
    async with served.raw() as browser:
        home = await browser.get(f"/login?token={token}", follow_redirects=True)
        assert home.status_code == 200 and 'data-page="home"' in home.text
        policy = home.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        charm = await browser.get(f"/{Identity.generate().did}/of:abc")
        assert 'data-page="charm"' in charm.text
        module = await browser.get("/static/shell.js")
        assert module.status_code == 200
        assert "javascript" in module.headers["content-type"]
        assert "innerHTML" not in module.text and "eval(" not in module.text


async def test_pages_never_shadow_the_api_docs_health_or_login(served: InProcess) -> None:
    token = served.app.state.sessions.login_token(Identity.generate().did)
    async with served.raw() as browser:
        await browser.get(f"/login?token={token}")
        assert (await browser.get("/_health")).json() == {"ok": True}
        assert (await browser.get("/openapi.json")).json()["info"]["title"] == "charmspace"
        assert "swagger" in (await browser.get("/docs")).text.lower()
        missing = await browser.get("/api/none")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "NotFoundError"
        assert (await browser.get("/favicon.ico")).status_code == 404
        assert (await browser.get("/api/session")).json()["did"].startswith("did:key:")


async def test_the_demo_banner_setting_reaches_the_page(tmp_path: object) -> None:
    from pathlib import Path

    import httpx

    from charmspace.server import Settings, create_app

    app = create_app(Settings(data=Path(str(tmp_path)) / "data", demo_banner="Demo <mode>"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as browser:
            page = await browser.get("/login")
    assert 'data-banner="Demo &lt;mode&gt;"' in page.text
