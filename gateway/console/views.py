"""The console's pages and actions. Reads go through storage's read models (the API's);
actions through gateway/commands.py, with the operator's name."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from gateway import logs
from gateway.api import dead_letter_filter
from gateway.console.session import COOKIE, LOGIN_COOKIE, Session, Sessions
from gateway.domain.records import parse_iso
from gateway.errors import GatewayError
from gateway.routes import GATEWAY_KEY
from gateway.shapes import DeadLetterWhere, problems
from storage import DeadLetterFilter

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logs.get("gateway.console")
SESSIONS = web.AppKey("console_sessions", Sessions)
SESSION = web.RequestKey("console_session", Session)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOGIN_SECONDS = 600  # how long a login form stays good
LIST_LIMIT = 50
UNMATCHED_CAP = 1000  # the overview counts this many at most ("1000+")


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY_KEY]


def _sessions(request: web.Request) -> Sessions:
    return request.app[SESSIONS]


def render(template: str, request: web.Request, page: dict[str, Any],
           status: int = 200) -> web.Response:
    """A page with what every page shows: the operator, the CSRF token, a notice."""
    session: Session | None = request.get(SESSION)
    return aiohttp_jinja2.render_template(template, request, {
        "operator": session.operator if session else None,
        "csrf": _sessions(request).csrf(session) if session else "",
        "message": request.query.get("msg"), "error": request.query.get("error"),
        **page}, status=status)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _age(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return (datetime.now(UTC) - parse_iso(stamp)).total_seconds()


def _back(path: str, **query: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?{urlencode(query)}" if query else path)


# access

def signed_in(handler: Handler) -> Handler:
    """Only with a session; a POST only with the session's CSRF token. The cookie is
    re-issued on the way out, so an idle expiry counts from the last request."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        sessions = _sessions(request)
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None:
            if request.method == "GET":
                raise web.HTTPSeeOther("/console/login?" + urlencode(
                    {"next": request.path_qs}))
            raise web.HTTPUnauthorized(text="no console session: log in again")
        if request.method == "POST":
            form = await request.post()
            if not sessions.csrf_ok(session, str(form.get("csrf", ""))):
                log.warning("console.csrf_refused", operator=session.operator,
                            path=request.path)
                raise web.HTTPForbidden(text="CSRF token missing or wrong: reload the page")
        request[SESSION] = session
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            _refresh(request, response, session)
            raise
        _refresh(request, response, session)
        return response
    return guarded


def _refresh(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    if response.cookies.get(COOKIE) is None:  # not logging out
        sessions = _sessions(request)
        sessions.set_cookie(request, response, COOKIE,
                            sessions.issue(session.operator, session.session_id),
                            sessions.idle_seconds)


def _audit(request: web.Request, action: str, **target: Any) -> str:
    operator = request[SESSION].operator
    log.info("console.action", operator=operator, action=action, **target)
    return f"console:{operator}"


async def to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/console/")


async def login_page(request: web.Request) -> web.StreamResponse:
    nonce = secrets.token_urlsafe(24)
    response = render("login.html", request, {
        "nonce": nonce, "next": _next(request.query.get("next"))})
    _sessions(request).set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_SECONDS)
    return response


def _next(value: str | None) -> str:
    """Only a console path: never somewhere else after logging in."""
    if value and value.startswith("/console/") and "//" not in value and "\\" not in value:
        return value
    return "/console/"


async def login(request: web.Request) -> web.StreamResponse:
    sessions, form = _sessions(request), await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce, str(form.get("nonce", ""))):
        raise web.HTTPForbidden(text="the login form expired or was not this console's:"
                                     " reload it")
    operator = sessions.operator_of(str(form.get("token", "")))
    if operator is None:
        log.warning("console.login_failed", remote=request.remote)
        response = render("login.html", request, {
            "nonce": nonce, "next": _next(str(form.get("next", ""))),
            "refused": "That token is not an operator token."}, status=401)
        return response
    log.info("console.login", operator=operator)
    response = web.HTTPSeeOther(_next(str(form.get("next", ""))))
    sessions.set_cookie(request, response, COOKIE, sessions.issue(operator),
                        sessions.idle_seconds)
    response.del_cookie(LOGIN_COOKIE, path="/console/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    log.info("console.logout", operator=request[SESSION].operator)
    response = web.HTTPSeeOther("/console/login?" + urlencode({"msg": "Logged out."}))
    response.del_cookie(COOKIE, path="/console/")
    raise response


# pages

async def overview(request: web.Request) -> web.StreamResponse:
    gw = _gateway(request)
    connectors = []
    jobs = {job.id: job.next_run_time for job in gw.scheduler.get_jobs()} \
        if gw.scheduler_running else {}
    for name, connector in gw.connectors.items():
        states = {s.feed: s for s in await gw.storage.feed_states(name)}
        feeds = []
        for feed in connector.feeds:
            state = states.get(feed.name)
            interval = connector.feed_interval(feed) * 60
            age = _age(state.last_poll_at if state else None)
            enabled = connector.feed_enabled(feed)
            failing = bool(state and state.last_error and (
                not state.last_poll_at or state.last_error_at > state.last_poll_at))
            next_run = jobs.get(f"poll:{name}:{feed.name}")  # the scheduler's job id
            # Late: no run for two intervals, or never one and none scheduled.
            late = enabled and (age > 2 * interval + 60 if age is not None
                                else next_run is None)
            feeds.append({"name": feed.name, "enabled": enabled, "interval": interval,
                          "paused": state.paused_by if state else None,
                          "state": state, "age": age, "failing": failing,
                          "late": late and not failing, "next_run": next_run})
        connectors.append({"name": name, "type": gw.config.connector(name).type,
                           "feeds": feeds, "status": connector.status()})
    inbox = await gw.storage.inbox_stats()
    outbox = await gw.storage.outbox_stats()
    destinations = await gw.commands.destinations()
    unmatched = await gw.storage.count_unmatched(UNMATCHED_CAP + 1)
    changes = await gw.storage.recent_status_changes(15)
    return render("overview.html", request, {
        "connectors": connectors, "inbox": inbox, "outbox": outbox,
        "destinations": destinations, "changes": changes,
        "unmatched": min(unmatched, UNMATCHED_CAP), "unmatched_more": unmatched > UNMATCHED_CAP,
        "dead": inbox["dead"] + outbox["dead"]})


async def search(request: web.Request) -> web.StreamResponse:
    gw, text = _gateway(request), request.query.get("q", "").strip()
    found: list[dict[str, str]] = []
    if text:
        if await gw.storage.fulfillment_order_view(text) is not None:
            raise web.HTTPSeeOther(f"/console/fo/{quote(text)}")
        shipment = await gw.storage.shipment_view(text)
        if shipment is not None:
            found.append({"kind": "shipment", "label": f"shipment {shipment.id}",
                          "href": _shipment_href(shipment),
                          "fo_id": next(iter(shipment.fulfillment_order_ids), None)})
        for hit in await gw.storage.search(text, 20, list(gw.connectors)):
            found.append({**hit, "href": _hit_href(hit)})
    return render("search.html", request, {"q": text, "found": found})


def _shipment_href(shipment: Any) -> str:
    if shipment.fulfillment_order_ids:
        return f"/console/fo/{quote(shipment.fulfillment_order_ids[0])}"
    return f"/console/unmatched#{quote(shipment.id)}"


def _hit_href(hit: dict[str, Any]) -> str:
    if hit.get("fo_id"):
        return f"/console/fo/{quote(hit['fo_id'])}"
    if hit.get("dead_letter"):
        return f"/console/dead-letters/{quote(hit['dead_letter'])}"
    return f"/console/unmatched#{quote(hit.get('shipment_id', ''))}"


async def fo_page(request: web.Request) -> web.StreamResponse:
    gw, fo_id = _gateway(request), request.match_info["id"]
    fo = await gw.storage.fulfillment_order_view(fo_id)
    if fo is None:
        raise web.HTTPNotFound(text=f"fulfillment order {fo_id} does not exist")
    return render("fo.html", request, {"fo": fo})


async def unmatched(request: web.Request) -> web.StreamResponse:
    gw = _gateway(request)
    page = await gw.storage.list_unmatched(request.query.get("cursor") or None, LIST_LIMIT)
    return render("unmatched.html", request, {
        "shipments": page.items, "next_cursor": page.next_cursor})


async def stock(request: web.Request) -> web.StreamResponse:
    """What stock from fulfilment networks needs of a person: discrepancies reported (never
    applied) and receipts held on shipments not yet reconciled, each with its sales order."""
    gw = _gateway(request)
    state = "held" if request.query.get("state") == "held" else "reported"
    page = await gw.storage.list_inbound_receipts(None, [state],
                                                  request.query.get("cursor") or None,
                                                  LIST_LIMIT)
    orders = {}
    for receipt in page.items:
        if receipt.transfer_order_id and receipt.transfer_order_id not in orders:
            orders[receipt.transfer_order_id] = await gw.storage.transfer_order(
                receipt.transfer_order_id)
    return render("stock.html", request, {
        "receipts": page.items, "orders": orders, "state": state,
        "next_cursor": page.next_cursor})


FILTER_FIELDS = ("name", "kind", "error", "since", "source")


def _filter(values: Any) -> tuple[DeadLetterFilter, dict[str, str]]:
    """The dead-letter filter a form or query gives, checked as the API checks it."""
    given = {k: str(values.get(k, "")).strip() for k in FILTER_FIELDS}
    given = {k: v for k, v in given.items() if v}
    if given.get("since") and len(given["since"]) == 10:
        given["since"] += "T00:00:00Z"  # a date from the form's date field
    try:
        where = DeadLetterWhere.model_validate(given)
    except ValidationError as exc:
        raise _back("/console/dead-letters", error="; ".join(
            f"{p['field']}: {p['message']}" for p in problems(exc))) from None
    return dead_letter_filter(where), given


async def dead_letters(request: web.Request) -> web.StreamResponse:
    gw = _gateway(request)
    where, given = _filter(request.query)
    page = await gw.storage.list_dead_letters(request.query.get("cursor") or None, LIST_LIMIT,
                                              where)
    return render("dead_letters.html", request, {
        "letters": page.items, "next_cursor": page.next_cursor, "filter": given,
        "query": urlencode(given)})


async def replay_matching(request: web.Request) -> web.StreamResponse:
    where, given = _filter(await request.post())
    by = _audit(request, "replay_dead_letters", **given)
    job = _gateway(request).commands.replay_matching(where, by=by)
    raise web.HTTPSeeOther(f"/console/dead-letters/replays/{job.id}")


async def replay_progress(request: web.Request) -> web.StreamResponse:
    job = _gateway(request).commands.replays.get(request.match_info["id"])
    if job is None:
        raise web.HTTPNotFound(text="no such replay on this process")
    return render("replay.html", request, {"job": job.view()})


async def dead_letter(request: web.Request) -> web.StreamResponse:
    gw, letter_id = _gateway(request), request.match_info["id"]
    letter = await gw.storage.dead_letter(letter_id)
    if letter is None:
        raise web.HTTPNotFound(text=f"dead letter {letter_id} does not exist")
    return render("dead_letter.html", request, {"letter": letter})


async def connector_page(request: web.Request) -> web.StreamResponse:
    gw, name = _gateway(request), request.match_info["name"]
    connector = gw.connectors.get(name)
    if connector is None:
        raise web.HTTPNotFound(text=f"no enabled connector {name!r}")
    states = {s.feed: s for s in await gw.storage.feed_states(name)}
    destination = next(d for d in await gw.commands.destinations()
                       if d["destination"] == f"connector:{name}")
    return render("connector.html", request, {
        "name": name, "type": gw.config.connector(name).type, "connector": connector,
        "feeds": [(f, states.get(f.name)) for f in connector.feeds],
        "destination": destination, "status": connector.status()})


# actions: each the API's command, with who did it

async def poll_now(request: web.Request) -> web.StreamResponse:
    name, form = request.match_info["name"], await request.post()
    feed = str(form.get("feed") or "") or None
    _audit(request, "poll", connector=name, feed=feed)
    back = f"/console/connectors/{quote(name)}"
    try:
        result = await _gateway(request).poller.poll(name, feed)
    except GatewayError as exc:
        raise _back(back, error=exc.message) from None
    except Exception as exc:  # the partner's failure, shown as the API shows it
        raise _back(back, error=f"{type(exc).__name__}: {exc}") from None
    raise _back(back, msg=f"Polled: {result['records']} record(s),"
                          f" {result['new_events']} new.")


async def feed_pause(request: web.Request) -> web.StreamResponse:
    name, feed = request.match_info["name"], request.match_info["feed"]
    pause = request.match_info["action"] == "pause"
    by = _audit(request, "pause_feed" if pause else "resume_feed", connector=name, feed=feed)
    return await _act(request, f"/console/connectors/{quote(name)}",
                      f"Feed {feed} {'paused' if pause else 'resumed'}.",
                      lambda: _gateway(request).commands.pause_feed(
                          name, feed, by if pause else None))


async def destination_pause(request: web.Request) -> web.StreamResponse:
    destination, form = request.match_info["destination"], await request.post()
    pause = request.match_info["action"] == "pause"
    by = _audit(request, "pause_destination" if pause else "resume_destination",
                destination=destination)
    return await _act(request, _next(str(form.get("back") or "/console/")),
                      f"{destination} {'paused' if pause else 'resumed'}.",
                      lambda: _gateway(request).commands.pause_destination(
                          destination, by if pause else None))

async def _act(request: web.Request, back: str, done: str,
               action: Callable[[], Awaitable[Any]]) -> web.StreamResponse:
    try:
        await action()
    except GatewayError as exc:
        raise _back(back, error=exc.message) from None
    raise _back(back, msg=done)


async def cancel_fo(request: web.Request) -> web.StreamResponse:
    fo_id, form = request.match_info["id"], await request.post()
    back = f"/console/fo/{quote(fo_id)}"
    if form.get("confirm") != "yes":
        raise _back(back, error="Tick the box to confirm the cancel.")
    by = _audit(request, "cancel_fulfillment_order", fo_id=fo_id)
    return await _act(request, back, "Cancelled.", lambda: _gateway(request).commands
                      .cancel_fulfillment_order(fo_id, by=by))


async def match(request: web.Request) -> web.StreamResponse:
    shipment_id, form = request.match_info["id"], await request.post()
    fo_id = str(form.get("fo_id") or form.get("candidate") or "").strip()
    if not fo_id:
        raise _back("/console/unmatched", error="Choose a candidate or give an FO id.")
    by = _audit(request, "match_shipment", shipment_id=shipment_id, fo_id=fo_id)
    return await _act(request, f"/console/fo/{quote(fo_id)}",
                      f"Shipment {shipment_id} matched by hand.",
                      lambda: _gateway(request).commands.match_unmatched(
                          shipment_id, [fo_id], by=by))


async def unmatch(request: web.Request) -> web.StreamResponse:
    shipment_id, form = request.match_info["id"], await request.post()
    back = str(form.get("back") or "/console/unmatched")
    by = _audit(request, "unmatch_shipment", shipment_id=shipment_id)
    return await _act(request, _next(back), f"Manual match of {shipment_id} undone.",
                      lambda: _gateway(request).commands.unmatch(shipment_id, by=by))


async def replay(request: web.Request) -> web.StreamResponse:
    letter_id = request.match_info["id"]
    _audit(request, "replay_dead_letter", dead_letter=letter_id)
    gw = _gateway(request)

    async def run() -> None:
        if not await gw.commands.replay_dead_letter(letter_id):
            raise GatewayError(f"dead letter {letter_id} does not exist (or was replayed)")

    return await _act(request, "/console/dead-letters", f"{letter_id} queued again.", run)


async def discard(request: web.Request) -> web.StreamResponse:
    letter_id, form = request.match_info["id"], await request.post()
    reason = str(form.get("reason", "")).strip()
    if not reason:
        raise _back(f"/console/dead-letters/{quote(letter_id)}",
                    error="Say why it is discarded.")
    by = _audit(request, "discard_dead_letter", dead_letter=letter_id, reason=reason)
    gw = _gateway(request)

    async def run() -> None:
        if not await gw.commands.discard_dead_letter(letter_id, reason, by=by):
            raise GatewayError(f"dead letter {letter_id} does not exist (or was discarded)")

    return await _act(request, "/console/dead-letters", f"{letter_id} discarded.", run)
