"""The operator console: server-rendered pages under /console/ for what needs a person.

Plain HTML forms and links (aiohttp-jinja2 templates, no front-end build). Every page needs a
session (gateway/console/session.py); every form carries a CSRF token; every action calls the
same command as the API (gateway/commands.py) and is logged as `console.action` with the
operator's name; where an FO is touched, its timeline says who did it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.console import views
from gateway.console.session import Sessions

if TYPE_CHECKING:
    from gateway.app import Gateway

HERE = Path(__file__).parent


def add_console(app: web.Application, gateway: Gateway) -> None:
    """The console's routes on the gateway's app (before its catch-all), when configured."""
    tokens = gateway.config.console_tokens()
    if not tokens:
        return
    # No context processors: aiohttp-jinja2 runs them in an app middleware, which every
    # webhook would pay for; views.render adds the console's context itself.
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True)
    env.filters["duration"] = views.duration
    app[views.SESSIONS] = Sessions(tokens, gateway.config.console.session_idle_minutes * 60)
    # Each handler wrapped (no app middleware: webhooks must not pay for the console).
    add: Any = app.router.add_route
    add("GET", "/console", views.to_console)
    add("GET", "/console/login", views.login_page)
    add("POST", "/console/login", views.login)
    add("POST", "/console/logout", views.signed_in(views.logout))
    for method, path, handler in (
            ("GET", "/console/", views.overview),
            ("GET", "/console/search", views.search),
            ("GET", "/console/fo/{id}", views.fo_page),
            ("GET", "/console/connectors/{name}", views.connector_page),
            ("POST", "/console/connectors/{name}/poll", views.poll_now),
            ("POST", "/console/connectors/{name}/feeds/{feed}/{action:pause|resume}",
             views.feed_pause),
            ("POST", "/console/destinations/{destination}/{action:pause|resume}",
             views.destination_pause),
            ("POST", "/console/fo/{id}/cancel", views.cancel_fo),
            ("GET", "/console/unmatched", views.unmatched),
            ("GET", "/console/stock", views.stock),
            ("POST", "/console/shipments/{id}/match", views.match),
            ("POST", "/console/shipments/{id}/unmatch", views.unmatch),
            ("GET", "/console/dead-letters", views.dead_letters),
            ("POST", "/console/dead-letters/replay", views.replay_matching),
            ("GET", "/console/dead-letters/replays/{id}", views.replay_progress),
            ("GET", "/console/dead-letters/{id}", views.dead_letter),
            ("POST", "/console/dead-letters/{id}/replay", views.replay),
            ("POST", "/console/dead-letters/{id}/discard", views.discard)):
        add(method, path, views.signed_in(handler))
    app.router.add_static("/console/static/", HERE / "static")
