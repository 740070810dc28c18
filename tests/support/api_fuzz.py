"""The API fuzz runner: schemathesis cases from the narrowed Engine API spec
(tests/support/fuzz_scope.py) sent to a Flock manager over real engines; every answer
that looks wrong is sent again straight to each engine and judged by
tests/support/fuzz_verdict.py. Shared by tests/integration/test_api_fuzz.py (short,
derandomized) and bench/api_fuzz.py (long, figures).
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
import requests
import schemathesis
import yaml
from docker.transport import UnixHTTPAdapter
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from schemathesis.transport.requests import binary_serializer

from tests.support.fuzz_scope import (
    JSON_OBJECT_BODIES,
    POSITIVE_ONLY,
    Seeds,
    narrow,
    path_refs,
)
from tests.support.fuzz_verdict import FINDINGS, Answer, Figures, Finding, needs_engines, verdict

# Bodies of load, archive put and build are tar streams: sent as the bytes drawn.
schemathesis.serializer("application/x-tar")(binary_serializer)
POSITIVE, NEGATIVE, MISTYPED = "positive", "negative", "mistyped"
WRONG_TYPES = ("x", [1], {"x": 1}, -1, 1e300, True, "")
SPEC = pathlib.Path(__file__).resolve().parents[1] / "data" / "docker-api-v1.41.yaml"
ENGINE_BASE = "http+docker://localhost/v1.41"
# The seed that never ends by itself but stops within a second of SIGTERM.
_FOREVER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
_CHECKS = [response_schema_conformance, content_type_conformance]


@dataclass
class Target:
    """Where requests go: a base URL and the session that reaches it."""

    base: str
    session: requests.Session


def manager_target(port: int) -> Target:
    return Target(f"http://127.0.0.1:{port}/v1.41", requests.Session())


def engine_target(socket_path: str, timeout: float) -> Target:
    session = requests.Session()
    session.mount("http+docker://", UnixHTTPAdapter(f"http+unix://{socket_path}",
                                                      timeout=timeout))
    return Target(ENGINE_BASE, session)


class Fuzzer:
    """Seeds, sends, judges and counts. `restore_busybox(i)` imports busybox again into
    engine i when a case removed it (a forced image delete by ID prefix may)."""

    def __init__(self, manager_port: int, engine_sockets: Sequence[str],
                 nodes: Sequence[str], restore_busybox: Callable[[int], None],
                 timeout: float = 30, log: Callable[[str], None] | None = None) -> None:
        self.timeout = timeout
        self.log = log
        self.nodes = tuple(nodes)
        self.manager = manager_target(manager_port)
        self.engines = [engine_target(s, timeout) for s in engine_sockets]
        self.restore_busybox = restore_busybox
        self.seeds = Seeds(nodes=self.nodes)
        self.figures = Figures()
        self._node_ref = re.compile("|".join(re.escape(n) for n in self.nodes))
        self.schema = schemathesis.openapi.from_dict(
            narrow(yaml.safe_load(SPEC.read_text()), self.seeds))

    # -- the run ---------------------------------------------------------------------

    def operations(self) -> list:
        return [result.ok() for result in self.schema.get_all_operations()]

    def run(self, examples: int, derandomize: bool = True, seed: int | None = None,
            deadline: float | None = None) -> Figures:
        """Every operation, positive cases then negative ones (where allowed),
        `examples` of each; stops early past `deadline` (time.monotonic())."""
        for operation in self.operations():
            for mode in self.modes(operation):
                if deadline is not None and time.monotonic() > deadline:
                    return self.figures
                self.ensure_seeds()
                self.run_operation(operation, mode, examples, derandomize, seed)
        return self.figures

    @staticmethod
    def modes(operation) -> list[str]:
        """positive (valid per the spec), negative (schemathesis' invalid cases) and
        mistyped (valid, but one field of the JSON body of another type)."""
        op_id = operation.definition.raw.get("operationId", "")
        if op_id in POSITIVE_ONLY:
            return [POSITIVE]
        return [POSITIVE, NEGATIVE, *([MISTYPED] if op_id in JSON_OBJECT_BODIES else [])]

    def run_operation(self, operation, mode: str, examples: int,
                      derandomize: bool, seed: int | None) -> None:
        strategy = self._strategy(operation, mode)
        hung: list[bool] = []

        def one(case) -> None:
            if hung:  # one hang per operation is enough to know; the rest would wait too
                return
            if self.send(operation.label, case) == "hang":
                hung.append(True)

        test = settings(max_examples=examples, derandomize=derandomize, deadline=None,
                        database=None, phases=[Phase.generate], verbosity=Verbosity.quiet,
                        suppress_health_check=list(HealthCheck))(given(strategy)(one))
        if seed is not None and not derandomize:
            test = hypothesis_seed(seed)(test)
        started, before = time.monotonic(), self.figures.requests
        with warnings.catch_warnings():
            # schemathesis' strategies seed `random` themselves; Hypothesis warns of it
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            try:
                test()
            except Unsatisfiable:  # nothing to negate (no parameters, no body)
                pass
        if self.log is not None:
            self.log(f"{operation.label} {mode}: {self.figures.requests - before} "
                     f"requests, {time.monotonic() - started:.1f} s")

    def _strategy(self, operation, mode: str):
        if mode == MISTYPED:
            return st.tuples(self._strategy(operation, POSITIVE), st.integers(0, 1 << 16),
                             st.sampled_from(WRONG_TYPES), st.booleans()).map(_mistype)
        generation = GenerationMode(mode)
        refs = path_refs(operation.path, operation.method.lower(), self.seeds)
        if not refs:
            return operation.as_strategy(generation)
        (name, values), = refs.items()
        return st.one_of([operation.as_strategy(generation, path_parameters={name: v})
                          for v in values if v])

    # -- one case --------------------------------------------------------------------

    def send(self, label: str, case) -> str:
        """Send `case` to the manager, judge it (asking the engines when that matters)
        and count it; returns the verdict's category."""
        kwargs = case.as_transport_kwargs(base_url=self.manager.base)
        kwargs["headers"].pop("X-Schemathesis-TestCaseId", None)
        answer = self._answer(case, self.manager, kwargs)
        engines: tuple[Answer, ...] = ()
        if needs_engines(answer):  # both at once: a hang costs one timeout, not two
            with ThreadPoolExecutor(len(self.engines)) as pool:
                engines = tuple(pool.map(
                    lambda e: self._answer(case, e, self._for_engine(kwargs, e)),
                    self.engines))
        category = verdict(answer, engines, self.nodes)
        finding = None
        if category in FINDINGS:
            finding = Finding(label, category, describe(kwargs), answer, engines)
        self.figures.add(label, answer, category, finding)
        return "hang" if answer.status is None else category

    def _for_engine(self, kwargs: dict, engine: Target) -> dict:
        """The same request for an engine: its base URL, and `node/` qualifiers (which
        only the manager knows) taken out of the path, query and body."""
        out = dict(kwargs)
        path = kwargs["url"][len(self.manager.base):]
        out["url"] = engine.base + self._unqualify(path)
        params = kwargs.get("params")
        if isinstance(params, dict):
            out["params"] = {k: self._unqualify(v) if isinstance(v, str) else v
                             for k, v in params.items()}
        elif isinstance(params, str):
            out["params"] = self._unqualify(params)
        if isinstance(kwargs.get("json"), dict):
            out["json"] = json.loads(self._unqualify(json.dumps(kwargs["json"])))
        return out

    def _unqualify(self, text: str) -> str:
        return re.sub(rf"(?<![^/\"])({self._node_ref.pattern})(/|%2F)", "", text)

    def _answer(self, case, target: Target, kwargs: dict) -> Answer:
        started = time.monotonic()
        try:
            response = target.session.request(**kwargs, stream=True,
                                               timeout=(5, self.timeout))
            chunks = []
            for chunk in response.iter_content(65536):
                chunks.append(chunk)
                if time.monotonic() - started > self.timeout:
                    response.close()
                    return Answer(None, "no end within the timeout")
            response._content = b"".join(chunks)
        except requests.Timeout:
            return Answer(None, "no answer within the timeout")
        except requests.RequestException as exc:  # reset, cut short, bad chunking
            return Answer(599, f"no whole answer: {type(exc).__name__}: {exc}")
        return Answer(response.status_code, message_of(response.content),
                      self._violations(case, response),
                      response.headers.get("Content-Type", ""))

    @staticmethod
    def _violations(case, response: requests.Response) -> tuple[str, ...]:
        for holder in (response, response.request):  # schemathesis parses the URLs
            if holder is not None and holder.url.startswith("http+docker://"):
                holder.url = "http://" + holder.url[len("http+docker://"):]
        try:
            case.validate_response(response, checks=_CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - FailureGroup
            return tuple(sorted({violation_key(f) for f in getattr(exc, "exceptions", [exc])}))
        return ()

    # -- seeds -----------------------------------------------------------------------

    def api(self, method: str, path: str, body: object = None, **params) -> tuple[int, object]:
        response = self.manager.session.request(
            method, self.manager.base + path, json=body, params=params or None,
            timeout=self.timeout)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def ensure_seeds(self) -> None:
        """Make every seed exist in the state the path references expect; cases before
        may have killed, renamed, removed, paused or pruned them."""
        for index, engine in enumerate(self.engines):
            for ref in ("busybox:latest", self.seeds.image):
                status = engine.session.get(f"{engine.base}/images/{ref}/json").status_code
                if status == 404 and ref.startswith("busybox"):
                    self.restore_busybox(index)
                elif status == 404:
                    repo, tag = ref.split(":")
                    engine.session.post(f"{engine.base}/images/busybox:latest/tag",
                                        params={"repo": repo, "tag": tag})
        seeds = self.seeds
        wanted = {seeds.running: ("running", self.nodes[0], _FOREVER),
                  seeds.exited: ("exited", self.nodes[-1], ["true"]),
                  seeds.created: ("created", self.nodes[0], ["true"])}
        for name, (state, node, cmd) in wanted.items():
            status, body = self.api("GET", f"/containers/{name}/json")
            if (status == 200 and body["Id"] == seeds.ids.get(name)
                    and body["State"]["Status"] == state):
                continue
            self._make_container(name, state, node, cmd)
        if self.api("GET", f"/exec/{seeds.exec_id}/json")[0] != 200 or not seeds.exec_id:
            status, body = self.api("POST", f"/containers/{seeds.running}/exec",
                                    {"Cmd": ["true"]})
            assert status == 201, body
            seeds.exec_id = body["Id"]
        net = seeds.qualified(seeds.network) if seeds.network in seeds.placed else ""
        status, body = self.api("GET", f"/networks/{net or seeds.network}")
        if status != 200 or body.get("Id") != seeds.ids.get(seeds.network):
            self._make_network()
        for node in self.nodes:
            if self.api("GET", f"/volumes/{node}/{seeds.volume}")[0] != 200:
                status, body = self.api("POST", "/volumes/create",
                                        {"Name": f"{node}/{seeds.volume}"})
                assert status == 201, body

    def _make_container(self, name: str, state: str, node: str, cmd: list[str]) -> None:
        self.api("DELETE", f"/containers/{name}", force="1")
        status, body = self.api("POST", "/containers/create", {
            "Image": "busybox", "Cmd": cmd, "Env": [f"constraint:node=={node}"]}, name=name)
        assert status == 201, body
        self.seeds.ids[name] = body["Id"]
        self.seeds.placed[name] = node
        if state != "created":
            status, body = self.api("POST", f"/containers/{name}/start")
            assert status == 204, body
        if state == "exited":
            self.api("POST", f"/containers/{name}/wait")

    def _make_network(self) -> None:
        seeds, node = self.seeds, self.nodes[0]
        for each in self.nodes:
            self.api("DELETE", f"/networks/{each}/{seeds.network}")
        status, body = self.api("POST", "/networks/create",
                                {"Name": f"{node}/{seeds.network}"})
        assert status == 201, body
        seeds.ids[seeds.network] = body["Id"]
        seeds.placed[seeds.network] = node


def _mistype(drawn: tuple) -> object:
    """The case with one field of its JSON body (or of an object in it) swapped for a
    value of another type: schemathesis' negative mode seldom mistypes a field near the
    top, where a manager reads a body before the engine does."""
    case, pick, value, deeper = drawn
    target = case.body
    if not isinstance(target, dict) or not target:
        return case
    key = sorted(target)[pick % len(target)]
    if deeper and isinstance(target[key], dict) and target[key]:
        target = target[key]
        key = sorted(target)[pick % len(target)]
    if type(target[key]) is type(value):
        value = [1] if isinstance(value, str) else "x"
    target[key] = value
    return case


def message_of(raw: bytes) -> str:
    """The `message` of a JSON error body ("" for anything else)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return ""
    return str(value.get("message", "")) if isinstance(value, dict) else ""


def violation_key(failure: BaseException) -> str:
    """A failed check as a comparable key: its title and the schema path it failed at
    (not the value, which differs between any two answers)."""
    title = str(getattr(failure, "title", failure)).splitlines()[0][:120]
    path = getattr(failure, "schema_path", None)
    return f"{title} at {'/'.join(map(str, path))}" if path else title


def describe(kwargs: dict) -> str:
    """A request in one line, enough to send it again by hand."""
    query = kwargs.get("params") or {}
    body = kwargs.get("json", kwargs.get("data"))
    if isinstance(body, (dict, list)):
        body = json.dumps(body, default=repr)
    elif isinstance(body, bytes):
        body = body[:200]
    text = f"{kwargs['method']} {kwargs['url']}"
    if query:
        text += " ?" + json.dumps(query, default=repr)
    if body not in (None, b"", ""):
        text += f" body={str(body)[:300]}"
    return text


# -- what a run leaves behind ----------------------------------------------------------


def snapshot(engine_urls: Sequence[str]) -> list[dict[str, set[str]]]:
    """The objects on each engine before a run, so that cleanup removes only new ones."""
    return [_objects(docker.DockerClient(base_url=url, timeout=60)) for url in engine_urls]


def _objects(client: docker.DockerClient) -> dict[str, set[str]]:
    api = client.api
    return {
        "containers": {c["Id"] for c in api.containers(all=True)},
        "networks": {n["Id"] for n in api.networks()},
        "volumes": {v["Name"] for v in (api.volumes().get("Volumes") or [])},
        "images": {i["Id"]: set(i.get("RepoTags") or []) for i in api.images(all=True)},
    }


def cleanup(engine_urls: Sequence[str], before: list[dict[str, set[str]]]) -> None:
    """Remove what the run made on each engine: containers, networks, volumes, images."""
    for url, old in zip(engine_urls, before, strict=True):
        client = docker.DockerClient(base_url=url, timeout=120)
        api, now = client.api, _objects(client)
        for cid in now["containers"] - old["containers"]:
            _quietly(api.remove_container, cid, force=True, v=True)
        for nid in now["networks"] - old["networks"]:
            _quietly(api.remove_network, nid)
        for name in now["volumes"] - old["volumes"]:
            _quietly(api.remove_volume, name, force=True)
        kept = {tag for tags in old["images"].values() for tag in tags}
        for tags in now["images"].values():
            for tag in tags - kept:
                _quietly(api.remove_image, tag)
        for image, tags in _objects(client)["images"].items():
            if image not in old["images"] and not tags & kept:
                _quietly(api.remove_image, image, force=True)


def _quietly(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except docker.errors.APIError:
        pass
