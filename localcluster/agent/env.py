"""A container's environment, resolved as a kubelet does (values, references, $(VAR))."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

#: Reads ``(kind, namespace, name)`` -> the object's dict, or None when it does not exist.
Reader = Callable[[str, str, str], dict[str, Any] | None]

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The container cannot be configured yet (a missing Secret or key): retried, like kubelet's
    CreateContainerConfigError."""


def expand(text: str, env: dict[str, str]) -> str:
    """``$(VAR)`` becomes VAR's value when defined, ``$$`` becomes ``$``; the rest is kept."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def _labels_value(path: str, metadata: dict[str, Any]) -> str | None:
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if not match:
        return None
    return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))


def field_value(pod: dict[str, Any], path: str) -> str:
    metadata = pod.get("metadata", {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    labelled = _labels_value(path, metadata)
    if labelled is not None:
        return labelled
    if path in ("metadata.labels", "metadata.annotations"):
        items = metadata.get(path.split(".")[1]) or {}
        return "\n".join(f'{key}="{value}"' for key, value in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def _data(obj: dict[str, Any], kind: str) -> dict[str, str]:
    if kind == "Secret":
        raw = obj.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in raw.items()}
    return {**(obj.get("data") or {})}


def _key_ref(ref: dict[str, Any], kind: str, namespace: str, read: Reader) -> str | None:
    obj = read(kind, namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    data = _data(obj, kind)
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]]


def resolve(
    pod: dict[str, Any], container: dict[str, Any], base: dict[str, str], read: Reader
) -> dict[str, str]:
    """``base`` (PATH, HOME, service host...) then envFrom, then env in order, as kubelet."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if not ref:
                continue
            obj = read(kind, namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            for name, value in _data(obj, kind).items():
                env[prefix + name] = value
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value", ""), env)
            continue
        source = item["valueFrom"]
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], "Secret", namespace, read)
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], "ConfigMap", namespace, read)
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            # No resource accounting here: report "0" for an unset limit, as kubelet reports
            # node allocatable; tests should not depend on it.
            value = "0"
        else:
            raise ConfigError(f"unsupported valueFrom for {name}")
        if value is not None:
            env[name] = value
    return env


def command_line(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The argv: command then args, each with ``$(VAR)`` expanded. No image entry point."""
    return [expand(part, env) for part in (container.get("command") or [])] + [
        expand(part, env) for part in (container.get("args") or [])
    ]
