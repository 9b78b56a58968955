"""The operator's configuration, read once from the environment (Helm sets it). PURE.

The platform team decides which images and ServiceAccounts Jobs may run with; a Migration's
spec may only choose among them, so creating a Migration never grants more than that.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pgshift import __version__

#: the settings that shape what a Job does (its image, identity, environment): a plan made
#: under other values is not proof for this operator (decide.py, when a plan is skipped).
FINGERPRINTED = (
    "images",
    "default_image",
    "service_accounts",
    "default_service_account",
    "run_as_user",
    "run_as_group",
    "runner_env",
)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    #: runner images Jobs may use (`PGSHIFT_IMAGES`, comma-separated); the default is allowed
    #: implicitly. Spec values outside this list stall the Migration with `InvalidSpec`.
    images: tuple[str, ...] = ()
    #: the image used when `spec.job.image` is empty (`PGSHIFT_IMAGE`): the operator's own.
    default_image: str = "ghcr.io/pgshift/pgshift:0.1.0"
    #: ServiceAccounts Job Pods may run as (`PGSHIFT_SERVICE_ACCOUNTS`).
    service_accounts: tuple[str, ...] = ()
    #: `PGSHIFT_SERVICE_ACCOUNT`; empty = the namespace's `default`. The runner needs no API
    #: access, so its token is not mounted either way.
    default_service_account: str = ""
    #: namespaces to watch (`PGSHIFT_NAMESPACES`); empty = the whole cluster.
    namespaces: tuple[str, ...] = ()
    #: uid/gid of the runner (`PGSHIFT_RUN_AS_USER` / `_GROUP`): any non-root id; 65532 is the
    #: conventional "nonroot" user of distroless-style images.
    run_as_user: int = 65532
    run_as_group: int = 65532
    #: retryable failures (connection, lock busy, deadline) are retried this many times
    #: (`PGSHIFT_MAX_ATTEMPTS`) before the Migration is Stalled with `RetriesExhausted`.
    max_attempts: int = 6
    #: first retry delay in seconds, doubled per attempt up to `backoff_cap`.
    backoff_seconds: float = 10.0
    backoff_cap: float = 300.0
    #: how often a Rollout gate or a missing ConfigMap is looked at again, in seconds: the
    #: operator does not watch Deployments (least privilege: `get` only).
    poll_seconds: float = 15.0
    #: how long a Job's Pod may wait in ImagePullBackOff before the Migration stalls with
    #: ImageUnavailable (`PGSHIFT_IMAGE_PULL_GRACE`, seconds; pod_failures.py).
    image_pull_grace: float = 120.0
    #: kopf's liveness endpoint (`PGSHIFT_LIVENESS`), empty = none.
    liveness: str = "http://0.0.0.0:8080/healthz"
    #: where Prometheus scrapes the operator (`PGSHIFT_METRICS`: `http://HOST:PORT/PATH`, the
    #: form of `liveness`), empty = no metrics endpoint (docs/metrics.md).
    metrics: str = "http://0.0.0.0:9090/metrics"
    #: `json` in a cluster, `plain` for people (`PGSHIFT_LOG_FORMAT`).
    log_format: str = "json"
    #: extra environment for every runner container (tests only: `PGSHIFT_RUNNER_ENV`, k=v,...).
    runner_env: Mapping[str, str] = field(default_factory=dict)
    #: a Migration's last plan is made again after this many seconds even when nothing
    #: changed (`PGSHIFT_REPLAN_INTERVAL`; 0 = never), so out-of-band changes are seen.
    replan_interval: float = 86400.0
    #: plan Jobs run at once for Migrations re-planned on an operator restart
    #: (`PGSHIFT_RESUME_PLAN_LIMIT`): a restart of a 1,000-Migration operator does not start
    #: 1,000 Pods at once.
    resume_plan_limit: int = 10
    #: threads for the (synchronous) Kubernetes client calls of reconciles
    #: (`PGSHIFT_WORKERS`): the reconciles of different Migrations wait on the API in parallel.
    workers: int = 16

    @property
    def allowed_images(self) -> tuple[str, ...]:
        return (self.default_image, *(i for i in self.images if i != self.default_image))

    @property
    def allowed_service_accounts(self) -> tuple[str, ...]:
        base = (self.default_service_account,) if self.default_service_account else ()
        return (*base, *(s for s in self.service_accounts if s not in base))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        pairs = (kv.split("=", 1) for kv in _list(env.get("PGSHIFT_RUNNER_ENV")) if "=" in kv)
        return cls(
            images=_list(env.get("PGSHIFT_IMAGES")),
            default_image=env.get("PGSHIFT_IMAGE") or d.default_image,
            service_accounts=_list(env.get("PGSHIFT_SERVICE_ACCOUNTS")),
            default_service_account=env.get("PGSHIFT_SERVICE_ACCOUNT", d.default_service_account),
            namespaces=_list(env.get("PGSHIFT_NAMESPACES")),
            run_as_user=int(env.get("PGSHIFT_RUN_AS_USER") or d.run_as_user),
            run_as_group=int(env.get("PGSHIFT_RUN_AS_GROUP") or d.run_as_group),
            max_attempts=int(env.get("PGSHIFT_MAX_ATTEMPTS") or d.max_attempts),
            backoff_seconds=float(env.get("PGSHIFT_RETRY_BACKOFF") or d.backoff_seconds),
            backoff_cap=float(env.get("PGSHIFT_RETRY_BACKOFF_CAP") or d.backoff_cap),
            poll_seconds=float(env.get("PGSHIFT_POLL_SECONDS") or d.poll_seconds),
            image_pull_grace=float(env.get("PGSHIFT_IMAGE_PULL_GRACE") or d.image_pull_grace),
            liveness=env.get("PGSHIFT_LIVENESS", d.liveness),
            metrics=env.get("PGSHIFT_METRICS", d.metrics),
            log_format=env.get("PGSHIFT_LOG_FORMAT") or d.log_format,
            runner_env=dict((k.strip(), v.strip()) for k, v in pairs),
            replan_interval=float(env.get("PGSHIFT_REPLAN_INTERVAL") or d.replan_interval),
            resume_plan_limit=int(env.get("PGSHIFT_RESUME_PLAN_LIMIT") or d.resume_plan_limit),
            workers=int(env.get("PGSHIFT_WORKERS") or d.workers),
        )

    @property
    def fingerprint(self) -> str:
        """What a plan was made under: the operator's version and the Job-shaping settings."""
        shaped = {name: getattr(self, name) for name in FINGERPRINTED}
        text = json.dumps([__version__, shaped], sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based)."""
        return min(self.backoff_cap, self.backoff_seconds * 2.0 ** max(0, attempt - 1))
