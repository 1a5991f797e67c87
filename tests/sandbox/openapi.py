"""Validate the GitHub simulator's responses and webhooks against GitHub's own schemas.

The schemas are GitHub's official REST description (npm `@octokit/openapi`, the
api.github.com variant) and the webhook schemas (npm `@octokit/webhooks-schemas`),
fetched pinned by scripts/fetch-octokit-schemas.sh into a cache (env GHR_CACHE_DIR,
default ~/.cache/ghr). The description is split once into one small file per
operation holding its response schemas and the component schemas they use, with the
OpenAPI 3.0 dialect (`nullable`) turned into plain JSON Schema, so that a validator
loads and compiles only the operations it is asked about.

The package's dereferenced variant says the same, but is 70 MB (430 MB of Python
objects to load); resolving the `$ref`s here costs a fifth of that, once.

    python -m tests.sandbox.openapi fetch      # fetch and prepare the cache (and the webhook examples), print where
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import typing as t

import jsonschema  # type: ignore[import-untyped]  # no stubs in the environment

SCRIPT = pathlib.Path(__file__).resolve().parent / "scripts" / "fetch-octokit-schemas.sh"

# Keys that only annotate a schema; dropping them keeps the per-operation files small.
_ANNOTATIONS = frozenset({"description", "example", "examples", "title", "externalDocs", "deprecated", "xml"})
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def pinned_versions(script: pathlib.Path = SCRIPT) -> tuple[str, str]:
    """(openapi, webhooks-schemas) versions, as pinned in the fetch script."""
    found = _pins(script)
    return found["OCTOKIT_OPENAPI_VERSION"], found["OCTOKIT_WEBHOOKS_SCHEMAS_VERSION"]


def _pins(script: pathlib.Path = SCRIPT) -> dict[str, str]:
    return dict(re.findall(r"^(OCTOKIT_\w+_VERSION)=(\S+)$", script.read_text(), re.MULTILINE))


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GHR_CACHE_DIR") or pathlib.Path.home() / ".cache" / "ghr")


def to_json_schema(schema: t.Any, refs: set[str] | None = None) -> t.Any:
    """An OpenAPI 3.0 schema object as JSON Schema (draft 4 semantics), annotations dropped.

    `$ref`s to components/schemas become `#/definitions/<name>`; their names are added to `refs`.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, t.Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS or key.startswith("x-") or key in ("nullable", "readOnly", "writeOnly", "discriminator"):
            continue
        if key == "$ref":
            name = value.rsplit("/", 1)[1]
            if refs is not None:
                refs.add(name)
            out[key] = f"#/definitions/{name}"
        elif key == "properties":
            out[key] = {name: to_json_schema(sub, refs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value, refs)
        elif key in _SCHEMA_LISTS:
            out[key] = [to_json_schema(sub, refs) for sub in value]
        else:
            out[key] = value
    if schema.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _op_file(method: str, path: str) -> str:
    return hashlib.sha1(f"{method.upper()} {path}".encode()).hexdigest()[:16] + ".json"


class _Components:
    """The description's component schemas, converted once each, with what each refers to."""

    def __init__(self, doc: dict[str, t.Any]) -> None:
        self._doc = doc
        self._schemas: dict[str, t.Any] = doc["components"]["schemas"]
        self.converted: dict[str, t.Any] = {}
        self._refs: dict[str, set[str]] = {}

    def resolve(self, node: t.Any) -> t.Any:
        """Follow `$ref`s to components (responses, headers) to the object they name."""
        while isinstance(node, dict) and "$ref" in node:
            target: t.Any = self._doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def closure(self, names: set[str]) -> dict[str, t.Any]:
        """The converted schemas of `names` and of everything they refer to, transitively."""
        todo, seen = list(names), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name not in self.converted:
                refs: set[str] = set()
                self.converted[name] = to_json_schema(self._schemas[name], refs)
                self._refs[name] = refs
            todo.extend(self._refs[name] - seen)
        return {name: self.converted[name] for name in sorted(seen)}


def split_description(description: pathlib.Path, dest: pathlib.Path) -> None:
    """Write one file per operation (its responses as JSON Schema, with the definitions they use) and an index."""
    doc = json.loads(description.read_text())
    components = _Components(doc)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    index: dict[str, t.Any] = {"info": doc.get("info", {}), "operations": {}}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            refs: set[str] = set()
            responses: dict[str, t.Any] = {}
            for status, resp in op["responses"].items():
                resp = components.resolve(resp)
                content = resp.get("content") or {}
                media = "application/json" if "application/json" in content else next(iter(content), None)
                schema = to_json_schema(components.resolve(content[media].get("schema")), refs) if media else None
                responses[status] = {
                    "media_type": media,
                    "schema": schema,
                    "headers": sorted(resp.get("headers") or {}),
                }
            name = _op_file(method, path)
            entry = {
                "method": method.upper(),
                "path": path,
                "operationId": op.get("operationId"),
                "responses": responses,
                "definitions": components.closure(refs),
            }
            (tmp / name).write_text(json.dumps(entry))
            index["operations"][f"{method.upper()} {path}"] = {"operationId": op.get("operationId"), "file": name}
    # Errors GitHub returns on any route (401, 403 rate limit, 404 ...) have the "basic-error" shape.
    index["basic_error"] = components.closure({"basic-error"})["basic-error"]
    (tmp / "index.json").write_text(json.dumps(index))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> t.Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_schemas(root: pathlib.Path | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """Fetch (npm pack) and prepare the pinned schemas once; returns (operations dir, webhook schema file)."""
    root = root or cache_dir()
    openapi_version, webhooks_version = pinned_versions()
    base = root / "octokit"
    ops_dir = base / f"openapi-{openapi_version}" / "operations"
    webhooks = base / f"webhooks-schemas-{webhooks_version}" / "schema.json"
    if (ops_dir / "index.json").exists() and webhooks.exists():
        return ops_dir, webhooks
    with _locked(base / ".lock"):
        if not ((ops_dir / "index.json").exists() and webhooks.exists()):
            subprocess.run(["bash", str(SCRIPT), str(root)], check=True, stdout=subprocess.DEVNULL)
            description = ops_dir.parent / "api.github.com.json"
            if not (ops_dir / "index.json").exists():
                split_description(description, ops_dir)
            description.unlink(missing_ok=True)  # 13 MB; the split files are all we read
    return ops_dir, webhooks


def ensure_webhook_examples(root: pathlib.Path | None = None) -> pathlib.Path:
    """The directory of the pinned `@octokit/webhooks-examples`: one `<variant>/index.json` per GitHub variant."""
    root = root or cache_dir()
    base = root / "octokit"
    examples = base / f"webhooks-examples-{_pins()['OCTOKIT_WEBHOOKS_EXAMPLES_VERSION']}"
    if not (examples / "api.github.com" / "index.json").exists():
        with _locked(base / ".lock"):
            if not (examples / "api.github.com" / "index.json").exists():
                subprocess.run(["bash", str(SCRIPT), str(root)], check=True, stdout=subprocess.DEVNULL)
    return examples


def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(_check_date_time)


def _errors(validator: jsonschema.protocols.Validator, instance: t.Any, limit: int = 5) -> list[str]:
    found = []
    for err in validator.iter_errors(instance):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        found.append(f"{where}: {err.message[:300]}")
        if len(found) >= limit:
            break
    return found


class SchemaValidator:
    """Validates (method, route template, status, body) and webhook payloads; compiles lazily, once."""

    def __init__(self, ops_dir: pathlib.Path, webhooks_schema: pathlib.Path) -> None:
        self._ops_dir = ops_dir
        index = json.loads((ops_dir / "index.json").read_text())
        self.version = str(index.get("info", {}).get("version", ""))
        self._index: dict[str, dict[str, t.Any]] = index["operations"]
        self._basic_error = jsonschema.Draft4Validator(index["basic_error"], format_checker=_FORMATS)
        self._webhooks_path = webhooks_schema
        self._webhooks: dict[str, t.Any] | None = None
        self._ops: dict[str, dict[str, t.Any]] = {}
        self._compiled: dict[tuple[str, str], jsonschema.protocols.Validator | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> SchemaValidator:
        return cls(*ensure_schemas())

    def has_operation(self, method: str, template: str) -> bool:
        return f"{method.upper()} {template}" in self._index

    def _operation(self, key: str) -> dict[str, t.Any]:
        op = self._ops.get(key)
        if op is None:
            op = json.loads((self._ops_dir / self._index[key]["file"]).read_text())
            self._ops[key] = op
        return op

    def validate_response(self, method: str, template: str, status: int, body: t.Any) -> list[str]:
        """Errors (empty when valid) of one response against the matching operation's description."""
        key = f"{method.upper()} {template}"
        if key not in self._index:
            return [f"{key} is not an operation of the GitHub REST description"]
        with self._lock:
            op = self._operation(key)
            declared = op["responses"].get(str(status)) or op["responses"].get("default")
            if declared is None:
                if status < 400:
                    return [f"status {status} is not a documented response of {op['operationId']}"]
                validator: jsonschema.protocols.Validator | None = self._basic_error
            else:
                cache_key = (key, str(status))
                if cache_key not in self._compiled:
                    schema = declared["schema"]
                    root = {"definitions": op["definitions"], "allOf": [schema]}
                    self._compiled[cache_key] = (
                        jsonschema.Draft4Validator(root, format_checker=_FORMATS) if schema is not None else None
                    )
                validator = self._compiled[cache_key]
        if validator is None:
            if declared is not None and declared["media_type"] is None and body not in (None, b""):
                return [f"status {status} of {op['operationId']} has no body, but one was sent"]
            return []
        if body is None or isinstance(body, bytes):
            return [f"status {status} of {op['operationId']} needs a JSON body"]
        return _errors(validator, body)

    def validate_webhook(self, event: str, action: str, payload: t.Any) -> list[str]:
        """Errors (empty when valid) of a webhook payload against the `<event>$<action>` schema."""
        key = (f"webhook:{event}", action)
        with self._lock:
            if self._webhooks is None:
                self._webhooks = json.loads(self._webhooks_path.read_text())
            definitions = self._webhooks["definitions"]
            name = f"{event}${action}"
            if name not in definitions:
                return [f"no webhook schema for {name}"]
            if key not in self._compiled:
                root = {"$ref": f"#/definitions/{name}", "definitions": definitions}
                self._compiled[key] = jsonschema.Draft7Validator(root, format_checker=_FORMATS)
            validator = self._compiled[key]
        assert validator is not None
        return _errors(validator, payload)


def main(argv: list[str]) -> int:
    if argv[1:] != ["fetch"]:
        print(__doc__, file=sys.stderr)
        return 2
    ops_dir, webhooks = ensure_schemas()
    print(ops_dir)
    print(webhooks)
    print(ensure_webhook_examples())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
