"""Keystone v3: password and application-credential auth, scoped tokens with a catalog, expiry."""

from __future__ import annotations

import dataclasses
import secrets
import typing as t
import uuid

from tests.sandbox.httpserver import HttpError, Request, Response, Service
from tests.sandbox.openstack.common import UNAUTHORIZED, isotime_us, keystone_error

if t.TYPE_CHECKING:
    from tests.sandbox.world import World

REGION = "RegionOne"
DOMAIN = {"id": "default", "name": "Default"}
# Catalog entries: service type, service name, path under the service's base URL.
CATALOG = (
    ("identity", "keystone", "/v3"),
    ("compute", "nova", "/v2.1"),
    ("image", "glance", ""),
    ("network", "neutron", ""),
)

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
_BAD_REQUEST_TAIL = (
    " The server could not comply with the request since it is either malformed or otherwise incorrect."
    " The client is assumed to be in error."
)


@dataclasses.dataclass
class Token:
    id: str
    user_id: str
    project_id: str
    methods: list[str]
    issued: float
    expires: float
    app_cred_id: str | None = None
    admin: bool = False  # the project's admin user: Nova shows it OS-EXT-SRV-ATTR:* and admin actions
    audit_id: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(16)[:22])


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The sandbox's project, its member user and application credential, and its admin user."""

    username: str = "runner-admin"
    password: str = "sandbox-password"
    user_id: str = "7f3e0b1c9a6d4e2f8b5a1c3d2e4f6a7b"
    # A user with the admin role on the project (a cloud operator's credentials).
    admin_username: str = "cloud-admin"
    admin_password: str = "sandbox-admin-password"
    admin_user_id: str = "0c5d2e8f1a3b4c6d9e7f0a1b2c3d4e5f"
    project_name: str = "runners"
    project_id: str = "3c1a9f2e7d5b4c6a8e0f1b2d3c4a5e6f"
    app_cred_name: str = "sandbox-appcred"
    app_cred_id: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    app_cred_secret: str = "sandbox-appcred-secret"


class Identity:
    """Users, projects, application credentials and tokens (hold world.lock)."""

    def __init__(self, world: World, creds: Credentials | None = None) -> None:
        self.world = world
        self.creds = creds or Credentials()
        self.tokens: dict[str, Token] = {}
        # service type -> base URL of the simulator answering it; filled once the servers listen.
        self.endpoints: dict[str, str] = {}
        world.config.setdefault("openstack.token_ttl", 3600.0)

    @property
    def public_url(self) -> str:
        return self.endpoints.get("identity", "") + "/v3"

    def issue(self, user_id: str, methods: list[str], app_cred_id: str | None = None) -> Token:
        now = self.world.now()
        admin = user_id == self.creds.admin_user_id
        token = Token(
            id="gAAAAA" + secrets.token_urlsafe(96),  # the length and look of a Fernet token
            user_id=user_id,
            project_id=self.creds.project_id,
            methods=methods,
            issued=now,
            expires=now + float(self.world.config["openstack.token_ttl"]),
            app_cred_id=app_cred_id,
            admin=admin,
        )
        self.tokens[token.id] = token
        return token

    def validate(self, token_id: str) -> Token | None:
        token = self.tokens.get(token_id)
        if token is None or token.expires <= self.world.now():
            return None
        return token

    def catalog(self) -> list[dict[str, t.Any]]:
        entries = []
        for service_type, name, path in CATALOG:
            base = self.endpoints.get(service_type)
            if base is None:
                continue
            endpoints = [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{service_type}/{interface}").hex,
                    "interface": interface,
                    "region": REGION,
                    "region_id": REGION,
                    "url": base + path,
                }
                for interface in ("public", "internal")
            ]
            entries.append(
                {
                    "endpoints": endpoints,
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, name).hex,
                    "type": service_type,
                    "name": name,
                }
            )
        return entries

    def token_body(self, token: Token) -> dict[str, t.Any]:
        c = self.creds
        body: dict[str, t.Any] = {
            "methods": token.methods,
            "user": {
                "domain": DOMAIN,
                "id": c.admin_user_id if token.admin else c.user_id,
                "name": c.admin_username if token.admin else c.username,
                "password_expires_at": None,
            },
            "audit_ids": [token.audit_id],
            "expires_at": isotime_us(token.expires),
            "issued_at": isotime_us(token.issued),
            "project": {"domain": DOMAIN, "id": c.project_id, "name": c.project_name},
            "is_domain": False,
            "roles": [
                {"id": "0a1b2c3d4e5f40718293a4b5c6d7e8f9", "name": "member"},
                {"id": "1b2c3d4e5f6a4b7c8d9e0f1a2b3c4d5e", "name": "reader"},
            ]
            + ([{"id": "2c3d4e5f6a7b4c8d9e0f1a2b3c4d5e6f", "name": "admin"}] if token.admin else []),
            "catalog": self.catalog(),
        }
        if token.app_cred_id is not None:
            body["application_credential"] = {"id": c.app_cred_id, "name": c.app_cred_name, "restricted": True}
        return body


def _bad_request(detail: str) -> HttpError:
    message = detail + _BAD_REQUEST_TAIL
    return HttpError(400, message, body=keystone_error(400, "Bad Request", message))


def _unauthorized() -> HttpError:
    return HttpError(401, UNAUTHORIZED, body=keystone_error(401, "Unauthorized", UNAUTHORIZED))


def _domain_ok(domain: t.Any) -> bool:
    return isinstance(domain, dict) and (domain.get("id") == DOMAIN["id"] or domain.get("name") == DOMAIN["name"])


class KeystoneService(Service):
    name = "keystone"

    def __init__(self, world: World, identity: Identity) -> None:
        super().__init__(world)
        self.identity = identity
        r = self.router
        r.add("GET", "/", self.versions)
        r.add("GET", "/v3", self.version)
        r.add("POST", "/v3/auth/tokens", self.authenticate)
        r.add("GET", "/v3/auth/tokens", self.check_token)
        r.add("HEAD", "/v3/auth/tokens", self.check_token)
        r.add("DELETE", "/v3/auth/tokens", self.revoke_token)

    def error_response(self, req: Request, status: int, message: str) -> Response:
        return Response(status, keystone_error(status, _TITLES.get(status, "Internal Server Error"), message))

    def after(self, req: Request, resp: Response) -> None:
        resp.headers.setdefault("X-Openstack-Request-Id", f"req-{uuid.uuid4()}")
        if resp.status == 401:
            resp.headers.setdefault("WWW-Authenticate", f'Keystone uri="{self.identity.public_url}"')

    def _version_doc(self, req: Request) -> dict[str, t.Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{req.base_url}/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def versions(self, req: Request) -> Response:
        return Response(300, {"versions": {"values": [self._version_doc(req)]}})

    def version(self, req: Request) -> Response:
        return Response(200, {"version": self._version_doc(req)})

    # POST /v3/auth/tokens ---------------------------------------------------
    def authenticate(self, req: Request) -> Response:
        body = req.json()
        auth = body.get("auth") if isinstance(body, dict) else None
        if not isinstance(auth, dict):
            raise _bad_request("Expecting to find auth in request body.")
        ident = auth.get("identity")
        if not isinstance(ident, dict) or not isinstance(ident.get("methods"), list):
            raise _bad_request("Expecting to find identity in auth.")
        methods = ident["methods"]
        with self.world.lock:
            if methods == ["password"]:
                token = self._password(ident.get("password"), auth.get("scope"))
            elif methods == ["application_credential"]:
                token = self._app_cred(ident.get("application_credential"), auth.get("scope"))
            else:
                raise _unauthorized()
            token_body = self.identity.token_body(token)
        return Response(201, {"token": token_body}, {"X-Subject-Token": token.id})

    def _password(self, data: t.Any, scope: t.Any) -> Token:
        c = self.identity.creds
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict) or "password" not in user:
            raise _bad_request("Expecting to find password in identity.")
        accounts = ((c.user_id, c.username, c.password), (c.admin_user_id, c.admin_username, c.admin_password))
        account = next(
            (
                (user_id, password)
                for user_id, name, password in accounts
                if user.get("id") == user_id or (user.get("name") == name and _domain_ok(user.get("domain")))
            ),
            None,
        )
        if account is None or user.get("password") != account[1]:
            raise _unauthorized()
        if scope is not None:
            project = scope.get("project") if isinstance(scope, dict) else None
            if not isinstance(project, dict):
                raise _unauthorized()  # domain or system scope: no role there
            if not (
                project.get("id") == c.project_id
                or (project.get("name") == c.project_name and _domain_ok(project.get("domain")))
            ):
                raise _unauthorized()
        # Without a scope Keystone scopes to the user's default project, which ours has.
        return self.identity.issue(account[0], ["password"])

    def _app_cred(self, data: t.Any, scope: t.Any) -> Token:
        c = self.identity.creds
        if not isinstance(data, dict) or "secret" not in data:
            raise _bad_request("Expecting to find secret in application_credential.")
        if scope is not None:
            raise _unauthorized()  # application credentials cannot request a scope
        by_id = data.get("id") == c.app_cred_id
        user = data.get("user")
        by_name = (
            data.get("name") == c.app_cred_name
            and isinstance(user, dict)
            and (user.get("id") == c.user_id or (user.get("name") == c.username and _domain_ok(user.get("domain"))))
        )
        if not (by_id or by_name) or data.get("secret") != c.app_cred_secret:
            raise _unauthorized()
        return self.identity.issue(c.user_id, ["application_credential"], app_cred_id=c.app_cred_id)

    # GET/HEAD/DELETE /v3/auth/tokens -------------------------------------------
    def _subject(self, req: Request) -> t.Any:
        with self.world.lock:
            caller = self.identity.validate(req.header("x-auth-token") or "")
            if caller is None:
                raise _unauthorized()
            subject_id = req.header("x-subject-token") or ""
            subject = self.identity.validate(subject_id)
            if subject is None:
                message = f"Could not find token: {subject_id}."
                raise HttpError(404, message, body=keystone_error(404, "Not Found", message))
            return subject

    def check_token(self, req: Request) -> Response:
        subject = self._subject(req)
        with self.world.lock:
            body = self.identity.token_body(subject)
        return Response(200, {"token": body}, {"X-Subject-Token": subject.id})

    def revoke_token(self, req: Request) -> Response:
        subject = self._subject(req)
        with self.world.lock:
            self.identity.tokens.pop(subject.id, None)
        return Response(204)
