import reflex as rx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def ping(request):
    return JSONResponse({"ok": True})

api = Starlette(routes=[Route("/api/ping", ping)])

class Feed(rx.SharedState):
    n: int = 0
    @rx.event
    async def on_load(self):
        await self._link_to("project-1")
    @rx.event
    def inc(self):
        self.n += 1

def index():
    return rx.vstack(rx.text(Feed.n), rx.button("inc", on_click=Feed.inc), rx.moment(duration_from_now=True, format="mm:ss", interval=1000, date="2026-11-28T13:00:00Z"))

app = rx.App(api_transformer=api)
app.add_page(index, on_load=Feed.on_load)
