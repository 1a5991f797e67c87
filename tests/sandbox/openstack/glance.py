"""Glance v2: version discovery, image list (filters, paging) and show."""

from __future__ import annotations

import hashlib
import typing as t

from tests.sandbox.httpserver import HttpError, Request, Response
from tests.sandbox.openstack.common import OpenStackService, isotime, last_arg, new_id, parse_limit, webob_html_error

if t.TYPE_CHECKING:
    from tests.sandbox.openstack.identity import Identity
    from tests.sandbox.world import World

DEFAULT_IMAGES = ("ubuntu-24.04-runner", "ubuntu-22.04", "cirros-0.6.2")
_API_DEFAULT_LIMIT = 25  # glance-api limit_param_default
_API_MAX_LIMIT = 1000  # glance-api api_limit_max


class Images:
    """The image catalogue (read-only for the sandbox's purposes)."""

    def __init__(self, world: World, owner: str) -> None:
        now = world.now()
        self.images: dict[str, dict[str, t.Any]] = {}
        for offset, name in enumerate(DEFAULT_IMAGES):
            image_id = new_id()
            digest = hashlib.sha512(name.encode()).hexdigest()
            self.images[image_id] = {
                "id": image_id,
                "name": name,
                "status": "active",
                "visibility": "public",
                "protected": False,
                "os_hidden": False,
                "owner": owner,
                "container_format": "bare",
                "disk_format": "qcow2",
                "min_disk": 0,
                "min_ram": 0,
                "size": 2147483648,
                "virtual_size": 10737418240,
                "checksum": hashlib.md5(name.encode()).hexdigest(),
                "os_hash_algo": "sha512",
                "os_hash_value": digest,
                "tags": [],
                "created_at": isotime(now - 3600 * (offset + 1)),
                "updated_at": isotime(now - 3600 * (offset + 1)),
                "self": f"/v2/images/{image_id}",
                "file": f"/v2/images/{image_id}/file",
                "schema": "/v2/schemas/image",
            }

    def get(self, image_id: str) -> dict[str, t.Any] | None:
        return self.images.get(image_id)


def _matches(value: t.Any, wanted: str) -> bool:
    # Glance's "in:" operator: id=in:a,b or name=in:"x","y".
    if wanted.startswith("in:"):
        return str(value) in {w.strip().strip('"') for w in wanted[3:].split(",")}
    return str(value) == wanted


class GlanceService(OpenStackService):
    name = "glance"
    public_routes = frozenset({("GET", "/"), ("GET", "/versions")})

    def __init__(self, world: World, identity: Identity, images: Images) -> None:
        super().__init__(world, identity)
        self.images = images
        r = self.router
        r.add("GET", "/", self.versions)
        r.add("GET", "/versions", self.versions_ok)
        r.add("GET", "/v2/images", self.list_images)
        r.add("GET", "/v2/images/{image_id}", self.show_image)

    def error_response(self, req: Request, status: int, message: str) -> Response:
        return webob_html_error(status, message)

    def _versions(self, req: Request) -> dict[str, t.Any]:
        href = f"{req.base_url}/v2/"
        values = [("v2.17", "CURRENT")] + [(f"v2.{n}", "SUPPORTED") for n in range(16, -1, -1)]
        return {"versions": [{"id": v, "status": s, "links": [{"rel": "self", "href": href}]} for v, s in values]}

    def versions(self, req: Request) -> Response:
        return Response(300, self._versions(req))

    def versions_ok(self, req: Request) -> Response:
        return Response(200, self._versions(req))

    def list_images(self, req: Request) -> Response:
        limit = parse_limit(req, _API_MAX_LIMIT, lambda m: HttpError(400, m))
        if last_arg(req, "limit") is None:
            limit = _API_DEFAULT_LIMIT
        sort_dir = last_arg(req, "sort_dir") or "desc"
        if sort_dir not in ("asc", "desc"):
            raise HttpError(400, f"Invalid sort direction: {sort_dir}")
        filters = {k: v for k in ("name", "status", "visibility", "owner", "id") if (v := last_arg(req, k))}
        with self.world.lock:
            ordered = sorted(
                self.images.images.values(), key=lambda i: (i["created_at"], i["id"]), reverse=sort_dir == "desc"
            )
            marker = last_arg(req, "marker")
            if marker is not None:
                ids = [i["id"] for i in ordered]
                if marker not in ids:
                    raise HttpError(400, f"Invalid marker. Image {marker} could not be found.")
                ordered = ordered[ids.index(marker) + 1 :]
            matched = [i for i in ordered if all(_matches(i.get(k), v) for k, v in filters.items())]
            page = [dict(i) for i in matched[:limit]]
        body: dict[str, t.Any] = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
        if page and len(page) == limit:
            body["next"] = f"/v2/images?marker={page[-1]['id']}&limit={limit}"
        return Response(200, body)

    def show_image(self, req: Request) -> Response:
        image_id = req.params["image_id"]
        with self.world.lock:
            image = self.images.get(image_id)
            if image is None:
                raise HttpError(404, f"No image found with ID {image_id}")
            return Response(200, dict(image))
