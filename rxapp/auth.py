"""Sign-up, sign-in and sign-out as plain HTTP routes.

The session cookie is HttpOnly (scripts cannot read it) and SameSite=Lax (other
sites' forms, frames and websockets do not carry it), so it is set by a server
response, never by the Reflex websocket. Every sign-in ends in a full page load,
which opens a new websocket that carries the new cookie.
"""

from __future__ import annotations

import asyncio
from html import escape
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core.errors import InvalidInput
from core.logs import get_logger, log_step
from core.people.accounts import SESSION_DAYS, AuthError, UserView
from core.people.invitations import INVITE_PREFIX, InviteUnusable
from core.root import Core

SESSION_COOKIE = "canvas_session"
_INVITED = "You are invited to a shared project: create an account, or sign in, to join it."
log = get_logger("auth")


def session_token(cookie_header: str) -> str:
    """The session token in a raw Cookie header ("" when there is none)."""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header or "")
    except Exception:  # a malformed Cookie header is the same as none
        return ""
    morsel = cookies.get(SESSION_COOKIE)
    return morsel.value if morsel else ""


async def request_viewer(core: Core, request: Request) -> UserView | None:
    return await asyncio.to_thread(core.viewer, request.cookies.get(SESSION_COOKIE, ""))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a sign-in link must not bounce anyone to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _same_origin(request: Request) -> bool:
    """Refuse form posts from other sites (login CSRF); browsers send Origin on POST."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


_SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Canvas</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f6f5fb; display: grid; place-items: center; min-height: 100vh;
  margin: 0; }}
main {{ background: white; padding: 2rem; border-radius: 12px; box-shadow: 0 2px 12px #0001; width: min(360px, 90vw); }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
label {{ display: block; margin: 0.8rem 0 0.2rem; font-size: 0.9rem; }}
input {{ width: 100%; box-sizing: border-box; padding: 0.5rem; border: 1px solid #ccc; border-radius: 6px; }}
button {{ margin-top: 1.2rem; width: 100%; padding: 0.6rem; border: 0; border-radius: 6px; background: #6e56cf;
  color: white; font-size: 1rem; cursor: pointer; }}
p.error {{ color: #b42318; background: #fef3f2; padding: 0.5rem; border-radius: 6px; }}
p.notice {{ background: #f0eefc; padding: 0.5rem; border-radius: 6px; }}
p.switch {{ font-size: 0.9rem; text-align: center; }}
</style></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>
"""

_FORM = """{notice}{error}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="{email}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="{autocomplete}" required minlength="{minlength}"
  maxlength="256">
<button type="submit">{title}</button>
</form>
<p class="switch"><a href="{other_href}">{other_label}</a></p>
"""
#: An invitation's token is in these pages' URLs (`?next=/invite/...`): no Referer leaves
#: the site with it. Not `no-referrer`: that makes the browser send `Origin: null` with the
#: form, which `_same_origin` refuses.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


def client_address(request: Request, trusted_proxy_hops: int) -> str:
    """The client's address: the one our trusted proxies saw, else the peer's.

    X-Forwarded-For is written by the client too: only the entry the last trusted hop
    added is believed, so a client cannot pick the address its attempts count against.
    """
    forwarded = [ip.strip() for ip in request.headers.get("x-forwarded-for", "").split(",") if ip.strip()]
    if trusted_proxy_hops and len(forwarded) >= trusted_proxy_hops:
        return forwarded[-trusted_proxy_hops]
    return request.client.host if request.client else ""


def _page(
    *, signup: bool, next_path: str, error: str = "", email: str = "", status: int = 200, retry_after_s: int = 0
) -> HTMLResponse:
    query = urlencode({"next": next_path})
    title = "Create an account" if signup else "Sign in"
    invited = next_path.startswith(INVITE_PREFIX)
    body = _FORM.format(
        title=title,
        notice=f'<p class="notice">{_INVITED}</p>' if invited else "",
        action=f"/signup?{query}" if signup else f"/login?{query}",
        error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
        next=escape(next_path),
        email=escape(email),
        autocomplete="new-password" if signup else "current-password",
        minlength=8 if signup else 1,
        other_href=f"/login?{query}" if signup else f"/signup?{query}",
        other_label="I already have an account" if signup else "Create an account",
    )
    html = _SHELL.format(title=title, body=body)
    headers = dict(_HEADERS)
    if retry_after_s:
        headers["Retry-After"] = str(retry_after_s)
    return HTMLResponse(html, status_code=status, headers=headers)


def _notice_page(title: str, message: str, status: int) -> HTMLResponse:
    """A page that only says something: an invitation link that cannot be used, and why."""
    body = f'<p role="alert">{escape(message)}</p>\n<p class="switch"><a href="/">Go to your projects</a></p>'
    return HTMLResponse(_SHELL.format(title=escape(title), body=body), status_code=status, headers=_HEADERS)


def auth_routes(core: Core) -> list[Route]:
    secure = core.settings.secure_cookies

    def signed_in(token: str, next_path: str) -> Response:
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=SESSION_DAYS * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )
        return response

    async def form_page(request: Request, *, signup: bool) -> Response:
        next_path = _safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return _page(signup=signup, next_path=next_path)
        if not _same_origin(request):
            return Response("cross-site form post refused", status_code=403)
        form = await request.form()
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        next_path = _safe_next(str(form.get("next", next_path)))
        if not signup:
            address = client_address(request, core.settings.trusted_proxy_hops)
            if wait := await asyncio.to_thread(core.sign_in_limiter.attempt, email, address):
                error = f"Too many sign-in attempts. Try again in {wait} seconds."
                return _page(
                    signup=False, next_path=next_path, error=error, email=email, status=429, retry_after_s=wait
                )
        action = core.accounts.sign_up if signup else core.accounts.sign_in
        try:
            _, token = await asyncio.to_thread(action, email, password)
        except AuthError as exc:
            return _page(signup=signup, next_path=next_path, error=str(exc), email=email, status=400)
        return signed_in(token, next_path)

    async def login(request: Request) -> Response:
        return await form_page(request, signup=False)

    async def signup(request: Request) -> Response:
        return await form_page(request, signup=True)

    async def logout(request: Request) -> Response:
        if not _same_origin(request):
            return Response("cross-site form post refused", status_code=403)
        if token := request.cookies.get(SESSION_COOKIE):
            await asyncio.to_thread(core.accounts.sign_out, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
        return response

    async def invite(request: Request) -> Response:
        """An invitation link: accepted by a signed-in account (never the shared local user);
        a signed-out visitor signs up or in first and comes back here. A link scanner
        opening it signed out uses nothing up."""
        token = request.path_params["token"]
        user = await asyncio.to_thread(core.accounts.user_for, request.cookies.get(SESSION_COOKIE, ""))
        try:
            if user is None:
                await asyncio.to_thread(core.invitations.check, token)
                return RedirectResponse(f"/signup?{urlencode({'next': INVITE_PREFIX + token})}", status_code=303)
            project_id = await asyncio.to_thread(core.invitations.accept, token, user)
        except InviteUnusable as exc:
            log_step(log, "invite.unusable", reason=str(exc))
            return _notice_page("Invitation not valid", f"{exc} Ask the project's owner for a new link.", 410)
        except InvalidInput as exc:
            return _notice_page("Invitation not used", str(exc), 409)
        log_step(log, "invite.accepted", project_id=project_id, user_id=user.id)
        return RedirectResponse(f"/p/{project_id}", status_code=303)

    return [
        Route(INVITE_PREFIX + "{token}", invite, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/signup", signup, methods=["GET", "POST"]),
        Route("/auth/logout", logout, methods=["POST"]),
    ]
