"""Certificates and keys for one cluster, made with the openssl command.

One private CA signs the apiserver's serving certificate (so in-cluster clients verify it with
the ``ca.crt`` every Pod gets; it names 127.0.0.1, the Service IP 10.0.0.1 and the address the
node reaches it at). The service-account key pair
signs and verifies ServiceAccount tokens.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localcluster.errors import LocalClusterError

# EC keys take milliseconds to make, RSA hundreds: start-up time matters for tests.
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_SERVER_NAMES = (
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
    "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1"
)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalClusterError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")


def _leaf(folder: Path, name: str, subject: str, names: str, usage: str) -> None:
    _openssl(
        "req",
        "-new",
        *_EC,
        "-keyout",
        f"{name}.key",
        "-subj",
        subject,
        "-out",
        f"{name}.csr",
        cwd=folder,
    )
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName={names}\nextendedKeyUsage={usage}\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        ext.name,
        "-out",
        f"{name}.crt",
        cwd=folder,
    )


def make_pki(folder: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    if not shutil.which("openssl"):
        raise LocalClusterError("openssl is not installed: run `apt-get install openssl`")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-new",
        *_EC,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=localcluster-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=folder,
    )
    names = ",".join([_SERVER_NAMES, *(f"IP:{ip}" for ip in extra_ips)])
    _leaf(folder, "apiserver", "/CN=kube-apiserver", names, "serverAuth")
    _openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.key",
        cwd=folder,
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)
    return Pki(
        ca_cert=folder / "ca.crt",
        ca_key=folder / "ca.key",
        apiserver_cert=folder / "apiserver.crt",
        apiserver_key=folder / "apiserver.key",
        sa_key=folder / "sa.key",
        sa_pub=folder / "sa.pub",
    )
