"""Nova request validation: microversion headers and the JSON schemas of the bodies we accept.

The schemas follow nova/api/openstack/compute/schemas (draft 4, Nova's formats) and the
error text follows nova/api/validation/validators.py, so a client sees Nova's 400s.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import typing as t
import uuid

import jsonschema

from tests.sandbox.httpserver import HttpError, Request

Version = tuple[int, int]
MIN_VERSION: Version = (2, 1)
MAX_VERSION: Version = (2, 104)  # Nova 34
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")

_FORMATS = jsonschema.FormatChecker(())


@_FORMATS.checks("base64")
def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.decodebytes(value.encode())
    except binascii.Error:
        return False
    return True


@_FORMATS.checks("uuid")
def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@_FORMATS.checks("name")
def _is_name(value: object) -> bool:
    # Nova's "name" format: printable, no leading or trailing whitespace.
    return not isinstance(value, str) or (value == value.strip() and value.isprintable())


def version_string(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


def requested_version(req: Request) -> Version:
    """The compute microversion a request asks for (2.1 when it names none)."""
    value = None
    for part in (req.header("openstack-api-version") or "").split(","):
        words = part.split()
        if len(words) == 2 and words[0].lower() == "compute":
            value = words[1]
    if value is None:
        value = req.header("x-openstack-nova-api-version")
    if value is None:
        return MIN_VERSION
    value = value.strip()
    if value.lower() == "latest":
        return MAX_VERSION
    found = _VERSION_RE.match(value)
    if not found:
        raise HttpError(400, f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum.")
    version = (int(found.group(1)), int(found.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise HttpError(
            406,
            f"Version {value} is not supported by the API. Minimum is {version_string(MIN_VERSION)}"
            f" and maximum is {version_string(MAX_VERSION)}.",
        )
    return version


# Parameter types (nova/api/validation/parameter_types.py) -----------------------------
_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "format": "name"}
_BOOLEAN = {
    "type": ["boolean", "string"],
    "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
             False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"],
}  # fmt: skip
_METADATA = {
    "type": "object",
    "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}
_TAG = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/]*$"}
_TAGS = {"type": "array", "items": _TAG, "maxItems": 50}
_COUNT = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}
_NETWORK_ITEMS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "fixed_ip": {"type": "string"},
            "port": {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
            "uuid": {"type": "string"},
        },
        "additionalProperties": False,
    },
}


def is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "on", "yes"))


@functools.cache
def _create_validator(version: Version) -> jsonschema.Draft4Validator:
    server: dict[str, t.Any] = {
        "name": _NAME,
        "imageRef": {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]},
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": _METADATA,
        "networks": _NETWORK_ITEMS,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string"},
        "accessIPv6": {"type": "string"},
        "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
        "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
        "block_device_mapping": {"type": "array", "items": {"type": "object"}},
        "block_device_mapping_v2": {"type": "array", "items": {"type": "object"}},
        "config_drive": _BOOLEAN,
        "min_count": _COUNT,
        "max_count": _COUNT,
        "return_reservation_id": _BOOLEAN,
        "security_groups": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False},
        },
        "user_data": {"type": "string", "format": "base64", "maxLength": 65535},
        "personality": {"type": "array", "items": {"type": "object"}},
    }
    required = ["name", "flavorRef"]
    if version >= (2, 19):
        server["description"] = {"type": ["string", "null"], "maxLength": 255}
    if version >= (2, 37):
        server["networks"] = {"oneOf": [_NETWORK_ITEMS, {"type": "string", "enum": ["none", "auto"]}]}
        required.append("networks")
    if version >= (2, 52):
        server["tags"] = _TAGS
    if version >= (2, 57):
        del server["personality"]
    if version >= (2, 63):
        server["trusted_image_certificates"] = {"type": ["array", "null"], "items": {"type": "string"}}
    if version >= (2, 74):
        server["host"] = {"type": "string"}
        server["hypervisor_hostname"] = {"type": "string"}
    if version >= (2, 90):
        server["hostname"] = {"type": "string", "minLength": 1, "maxLength": 255}
    schema = {
        "type": "object",
        "properties": {
            "server": {"type": "object", "properties": server, "required": required, "additionalProperties": False},
            "os:scheduler_hints": {"type": "object"},
            "OS-SCH-HNT:scheduler_hints": {"type": "object"},
        },
        "required": ["server"],
        "additionalProperties": False,
    }
    return jsonschema.Draft4Validator(schema, format_checker=_FORMATS)


def _validate(validator: jsonschema.Draft4Validator, body: t.Any) -> None:
    try:
        validator.validate(body)
    except jsonschema.ValidationError as ex:
        # As Nova words it: the innermost field, its value and jsonschema's message.
        field = ex.path.pop() if ex.path else None
        detail = (
            ex.message
            if field is None
            else f"Invalid input for field/attribute {field}. Value: {ex.instance}. {ex.message}"
        )
        raise HttpError(400, detail) from None


def validate_create(body: t.Any, version: Version) -> dict[str, t.Any]:
    _validate(_create_validator(version), body)
    return t.cast(dict[str, t.Any], body["server"])


_VALIDATORS = {
    "metadata": jsonschema.Draft4Validator(
        {
            "type": "object",
            "properties": {"metadata": _METADATA},
            "required": ["metadata"],
            "additionalProperties": False,
        },
        format_checker=_FORMATS,
    ),
    "meta": jsonschema.Draft4Validator(
        {
            "type": "object",
            "properties": {"meta": {**_METADATA, "minProperties": 1, "maxProperties": 1}},
            "required": ["meta"],
            "additionalProperties": False,
        },
        format_checker=_FORMATS,
    ),
    "tags": jsonschema.Draft4Validator(
        {"type": "object", "properties": {"tags": _TAGS}, "required": ["tags"], "additionalProperties": False}
    ),
    "update": jsonschema.Draft4Validator(
        {
            "type": "object",
            "properties": {
                "server": {
                    "type": "object",
                    "properties": {"name": _NAME, "description": {"type": ["string", "null"], "maxLength": 255}},
                    "additionalProperties": False,
                }
            },
            "required": ["server"],
            "additionalProperties": False,
        },
        format_checker=_FORMATS,
    ),
}


_TAG_VALIDATOR = jsonschema.Draft4Validator(_TAG)


def validate_tag(tag: str) -> str:
    """A tag from the URL of PUT /servers/{id}/tags/{tag}."""
    try:
        _TAG_VALIDATOR.validate(tag)
    except jsonschema.ValidationError as ex:
        raise HttpError(400, f"Invalid input for field/attribute tag. Value: {tag}. {ex.message}") from None
    return tag


def validate(kind: str, body: t.Any) -> t.Any:
    _validate(_VALIDATORS[kind], body)
    return body
