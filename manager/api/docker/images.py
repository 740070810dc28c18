"""Image endpoints over the cluster: lists merged over nodes, pulls/imports/loads fanned
out to every healthy node with per-node progress, and single-image calls sent to the
nodes that hold the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse

from aiohttp import web

from flock.docker_compat.paths import api_path
from flock.manager.api.docker import json_body, proxy
from flock.manager.api.docker.body_tee import Branch, Tee
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError, bad_parameter, json_answer
from flock.manager.api.docker.pernode import listing
from flock.manager.cluster.agent_client import AgentError, DockerExchange
from flock.manager.cluster.model import Node
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import RuleError, spec_from_create

log = logging.getLogger("flock.manager.images")


def tag_progress(message: dict, node: str) -> dict:
    """One progress object, said by `node`: its id (or status) and errors name it."""
    out = dict(message)
    if "error" in out:
        out["error"] = f"{node}: {out['error']}"
        detail = out.get("errorDetail")
        if isinstance(detail, dict) and "message" in detail:
            out["errorDetail"] = dict(detail, message=f"{node}: {detail['message']}")
    elif out.get("id"):
        out["id"] = f"{node}: {out['id']}"
    elif "status" in out:
        out["status"] = f"{node}: {out['status']}"
    elif "stream" in out:
        out["stream"] = f"{node}: {out['stream']}"
    return out


def error_line(node: str, message: str) -> bytes:
    text = f"{node}: {message}"
    return json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n"


def merge_images(lists: list[list[dict]]) -> list[dict]:
    """One entry per image ID; tags and digests are the union over nodes."""
    merged: dict[str, dict] = {}
    for images in lists:
        for image in images:
            key = image.get("Id", "")
            if key not in merged:
                merged[key] = dict(image)
                continue
            seen = merged[key]
            for field in ("RepoTags", "RepoDigests"):
                union = list(dict.fromkeys((seen.get(field) or []) + (image.get(field) or [])))
                seen[field] = union or seen.get(field)
    return sorted(merged.values(), key=lambda i: i.get("Created", 0), reverse=True)


async def _all_nodes_json(call: Call, method: str, path: str, query: str = "",
                          nodes: list[Node] | None = None):
    nodes = call.state.healthy_nodes() if nodes is None else nodes
    answers = await asyncio.gather(
        *(proxy.node_json(call, n, method, path, query) for n in nodes),
        return_exceptions=True)
    return list(zip(nodes, answers, strict=True))


async def list_images(call: Call) -> web.StreamResponse:
    """`node` picks the nodes asked (classic: api/handlers.go getImagesJSON)."""
    asked = listing(call)
    lists = []
    for node, answer in await _all_nodes_json(call, "GET", "/images/json", asked.query,
                                              asked.nodes):
        if isinstance(answer, BaseException):
            log.warning("images of %s: %s", node.name, answer)
        elif answer[0] == 200 and isinstance(answer[1], list):
            lists.append(answer[1])
        elif answer[0] >= 400:
            raise DockerError(answer[0], proxy.message_of(answer[1]))
    return json_answer(merge_images(lists))


async def fan_out(call: Call, nodes: list[Node]) -> web.StreamResponse:
    """Send the request, and the client's body as it comes (body_tee.py), to `nodes`
    and merge their JSON-lines answers, each line tagged with its node. When every node
    refuses, answer with the first refusal (naming its node when there are several)."""
    if not nodes:
        raise DockerError(500, "no healthy node to send the image to: check `docker info`")
    request = call.request
    tee = Tee(proxy.request_body(request), len(nodes)) if request.body_exists else None
    branches: list[Branch | None] = list(tee.branches) if tee else [None] * len(nodes)
    pump = asyncio.create_task(tee.pump()) if tee else None
    try:
        return await _merge(call, nodes, branches)
    finally:
        for branch in branches:
            if branch is not None:
                branch.close()
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump


async def _open(call: Call, node: Node, branch: Branch | None
                ) -> DockerExchange | tuple[int, str]:
    """The node's exchange, or its refusal as (status, message); a refused node's
    branch is closed at once, so the others get the body without waiting for it."""
    try:
        exchange = await proxy.open_exchange(call, node, body=branch)
    except DockerError as exc:  # the agent is not there (proxy.unavailable)
        _close(branch)
        return exc.status, exc.message
    except AgentError as exc:
        _close(branch)
        return 502, str(exc)
    if exchange.status < 300:
        return exchange
    try:
        text = await exchange.body()
    except AgentError as exc:
        text = str(exc).encode()
    finally:
        exchange.cancel()
        _close(branch)
    return exchange.status, _message(text)


def _close(branch: Branch | None) -> None:
    if branch is not None:
        branch.close()


async def _merge(call: Call, nodes: list[Node], branches: list[Branch | None]
                 ) -> web.StreamResponse:
    opened = await asyncio.gather(
        *(_open(call, node, branch) for node, branch in zip(nodes, branches, strict=True)))
    live: list[tuple[Node, DockerExchange, Branch | None]] = []
    failed: list[tuple[Node, int, str]] = []
    for node, branch, result in zip(nodes, branches, opened, strict=True):
        if isinstance(result, tuple):
            failed.append((node, *result))
        else:
            live.append((node, result, branch))
    if not live:
        node, status, message = failed[0]
        raise DockerError(status, message if len(nodes) == 1 else f"{node.name}: {message}")
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(call.request)
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    readers = [asyncio.create_task(_lines(node, exchange, lines, branch))
               for node, exchange, branch in live]
    try:
        for _ in range(len(readers)):
            while (line := await lines.get()) is not None:
                if line:
                    await response.write(line)
        for node, _status, message in failed:
            await response.write(error_line(node.name, message))
    finally:
        for task in readers:
            task.cancel()
        for _node, exchange, _branch in live:
            exchange.cancel()
    for node, _exchange, _branch in live:
        try:
            await call.cluster.records.load_images(node.id)
        except AgentError as exc:
            log.debug("images of %s after a fan-out: %s", node.name, exc)
    return response


def _message(raw: bytes) -> str:
    try:
        return proxy.message_of(json.loads(raw))
    except ValueError:
        return raw.decode(errors="replace").strip()


async def _lines(node: Node, exchange: DockerExchange, out: asyncio.Queue,
                 branch: Branch | None = None) -> None:
    """The node's answer, line by line, into `out`; its branch of the body closes when
    the answer ends, early or not."""
    buffer = b""
    try:
        async for chunk in exchange:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                out.put_nowait(_tag_line(line, node.name))
        if buffer.strip():
            out.put_nowait(_tag_line(buffer, node.name))
    except AgentError as exc:
        out.put_nowait(error_line(node.name, str(exc)))
    finally:
        _close(branch)
        out.put_nowait(None)


def _tag_line(line: bytes, node: str) -> bytes:
    line = line.strip()
    if not line:
        return b""
    try:
        message = json.loads(line)
    except ValueError:
        return json.dumps({"status": f"{node}: {line.decode(errors='replace')}"}).encode() + b"\r\n"
    if isinstance(message, dict):
        message = tag_progress(message, node)
    return json.dumps(message).encode() + b"\r\n"


async def create(call: Call) -> web.StreamResponse:
    """docker pull (fromImage) and docker import (fromSrc) on every healthy node."""
    if not call.query.get("fromImage") and not call.query.get("fromSrc"):
        raise DockerError(400, "either fromImage or fromSrc must be given")
    return await fan_out(call, call.state.healthy_nodes())


async def load(call: Call) -> web.StreamResponse:
    return await fan_out(call, call.state.healthy_nodes())


async def inspections(call: Call, name: str) -> list[tuple[Node, dict]]:
    """Image `name` as each healthy node that has it describes it; 404 when none."""
    found = [(node, answer[1]) for node, answer
             in await _all_nodes_json(call, "GET", api_path("images", name, "json"))
             if not isinstance(answer, BaseException) and answer[0] == 200
             and isinstance(answer[1], dict)]
    if not found:
        raise DockerError(404, f"No such image: {name}")
    return found


async def holders(call: Call, name: str) -> list[Node]:
    """The healthy nodes where image `name` exists; 404 when none."""
    return [node for node, _ in await inspections(call, name)]


async def inspect(call: Call) -> web.StreamResponse:
    """The first holder's answer; the tags and digests are those of every node that
    holds the same image ID, as `docker images` merges them."""
    found = await inspections(call, call.params["name"])
    answer = dict(found[0][1])
    same = [image for _, image in found if image.get("Id") == answer.get("Id")]
    for field in ("RepoTags", "RepoDigests"):
        union = list(dict.fromkeys(t for image in same for t in image.get(field) or []))
        answer[field] = union if union or answer.get(field) is not None else None
    return json_answer(answer)


async def on_one_holder(call: Call) -> web.StreamResponse:
    """history, push, get (save): from the first node that has the image (every image,
    for a save of several)."""
    names = [call.params["name"]] if "name" in call.params else call.query.getall("names", [])
    if not names:
        raise DockerError(400, "no image names given")
    if call.template.endswith("/push") and call.query.get("tag"):
        names = [f"{names[0]}:{call.query['tag']}"]  # push names the repository, tag apart
    found = [{n.id: n for n in await holders(call, name)} for name in names]
    common = [node for node_id, node in found[0].items() if all(node_id in f for f in found)]
    if not common:  # classic's words and status (api/handlers.go getImages)
        raise DockerError(404, "Unable to find an engine containing all images: ["
                          + " ".join(names) + "]")
    return await proxy.forward(call, common[0])


async def on_every_holder(call: Call) -> web.StreamResponse:
    """rmi and tag: wherever the image is; refused everywhere -> the first refusal."""
    name = call.params["name"]
    nodes = await holders(call, name)
    results = await asyncio.gather(
        *(proxy.node_json(call, n, call.request.method, call.agent_path(), call.query_string)
          for n in nodes), return_exceptions=True)
    merged: list = []
    errors: list[tuple[int, str]] = []
    for node, result in zip(nodes, results, strict=True):
        if isinstance(result, BaseException):
            errors.append((503, f"{node.name}: {result}"))
            continue
        status, answer = result
        if status >= 300:
            errors.append((status, f"{node.name}: {proxy.message_of(answer)}"))
        elif isinstance(answer, list):
            merged += answer
        try:
            await call.cluster.records.load_images(node.id)
        except AgentError:
            pass
    if errors:
        raise DockerError(errors[0][0], "; ".join(message for _, message in errors))
    if call.request.method == "POST":
        return web.Response(status=201)
    return json_answer(merged)


RULE_PREFIXES = ("constraint:", "affinity:")


def build_rules(query: str) -> tuple[list[str], str]:
    """Classic Swarm's scheduling of a build: `--build-arg constraint:KEY==VALUE` (the
    arg's name is `constraint:KEY`, its value `=VALUE`) and likewise `affinity:`. Returns
    the rules as environment entries and the query without those build args, so that
    the engine does not warn about args no Dockerfile consumes."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    raw = next((v for k, v in pairs if k == "buildargs"), "")
    if not raw:
        return [], query
    try:
        args = json_body.loads(raw.encode())  # depth-checked: never a RecursionError
    except ValueError:
        raise bad_parameter(f"invalid buildargs: {raw[:80]}") from None
    if not isinstance(args, dict):
        raise bad_parameter("invalid buildargs: expected a JSON object")
    rules = [f"{k}={v}" for k, v in args.items() if k.startswith(RULE_PREFIXES)]
    kept = {k: v for k, v in args.items() if not k.startswith(RULE_PREFIXES)}
    pairs = [(k, json.dumps(kept) if k == "buildargs" else v) for k, v in pairs]
    return rules, urllib.parse.urlencode(pairs)


async def build(call: Call) -> web.StreamResponse:
    """`docker build` runs on one node: the one the scheduler picks for the build args'
    constraints and affinities, else the healthy one holding the fewest containers."""
    state = call.state
    rules, query = build_rules(call.query_string)
    if rules:
        try:
            spec = spec_from_create({"Image": "", "Env": rules})
            node = call.cluster.scheduler.place(state, spec).node
        except RuleError as exc:
            raise bad_parameter(str(exc)) from None
        except NoNodeAvailable as exc:
            raise DockerError(500, str(exc)) from None
    else:
        nodes = sorted(state.healthy_nodes(),
                       key=lambda n: (state.usage(n.id).containers, n.name))
        if not nodes:
            raise DockerError(500, "no healthy node to build on: check `docker info`")
        node = nodes[0]
    response = await proxy.forward(call, node, query=query)
    try:
        await call.cluster.records.load_images(node.id)
    except AgentError as exc:
        log.debug("images of %s after a build: %s", node.name, exc)
    return response


async def search(call: Call) -> web.StreamResponse:
    nodes = call.state.healthy_nodes()
    if not nodes:
        raise DockerError(500, "no healthy node to search from: check `docker info`")
    return await proxy.forward(call, nodes[0])


async def prune(call: Call) -> web.StreamResponse:
    deleted: list = []
    reclaimed = 0
    for node, answer in await _all_nodes_json(call, "POST", "/images/prune", call.query_string):
        if isinstance(answer, BaseException) or answer[0] != 200:
            log.warning("image prune on %s: %s", node.name, answer)
            continue
        deleted += answer[1].get("ImagesDeleted") or []
        reclaimed += int(answer[1].get("SpaceReclaimed") or 0)
    return json_answer({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


ROUTES = [
    ("GET", "/images/json", list_images),
    ("POST", "/images/create", create),
    ("POST", "/images/load", load),
    ("POST", "/build", build),
    ("GET", "/images/search", search),
    ("GET", "/images/get", on_one_holder),
    ("POST", "/images/prune", prune),
    ("GET", "/images/{name*}/json", inspect),
    ("GET", "/images/{name*}/history", on_one_holder),
    ("GET", "/images/{name*}/get", on_one_holder),
    ("POST", "/images/{name*}/push", on_one_holder),
    ("POST", "/images/{name*}/tag", on_every_holder),
    ("DELETE", "/images/{name*}", on_every_holder),
]
