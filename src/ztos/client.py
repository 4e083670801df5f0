"""The controller API client used by the CLI and the agent.

One seam for all HTTP: ``ApiClient.request`` tries each controller URL in
turn, authenticates with the identity's client certificate, verifies the
controller against the pinned CA, and turns every failure into the ZTOS
error tree (``{"error", "detail"}`` bodies become the matching exception).

Failover: the URL that answered last is tried first (a dead replica costs
one failed connect, not one per request), and connecting, TLS included, may
take at most ``CONNECT_TIMEOUT`` whatever the request's own timeout, so a
replica that vanished without a reset (host down, partition) is left within
that bound. A long-poll cut by its replica's death is re-sent to the next one,
and so is a POST, under the ``Idempotency-Key`` it was first sent with, so the
controllers apply it once (a resend answers 409 ``duplicate_request``).
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import errors, naming, pki
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.profile import Profile
from ztos.enroll.server import EnrollRequest, EnrollResponse

STATUS_ERRORS: dict[int, type[errors.ZtosError]] = {
    400: errors.InvalidInput,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.InvalidInput,
    422: errors.InvalidInput,
    503: errors.Unreachable,
}
CONNECT_TIMEOUT = 1.5  # seconds to reach a controller (TCP + TLS) before trying the next


def api_path(*segments: str) -> str:
    """``/api/v1/`` plus each segment quoted: a name can never add or climb a path level."""
    try:
        return "/api/v1/" + "/".join(naming.path_segment(segment) for segment in segments)
    except ValueError as exc:
        raise errors.InvalidInput(str(exc)) from exc


def tls_context(ca_file: Path, identity: IdentityDir | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if identity is not None and identity.is_enrolled():
        context.load_cert_chain(str(identity.tls_cert), str(identity.tls_key))
    return context


def error_from_response(response: httpx.Response) -> errors.ZtosError:
    try:
        body = response.json()
        code, detail = str(body["error"]), str(body["detail"])
    except (ValueError, KeyError, TypeError):
        code, detail = f"http_{response.status_code}", response.text[:200]
    cls = STATUS_ERRORS.get(response.status_code, errors.ZtosError)
    return cls(detail, code=code)


@dataclass
class ApiClient:
    """Keeps one HTTP/1.1 connection pool per controller URL, so a long-running
    agent pays for the TLS handshake once, not on every request."""

    urls: list[str]
    context: ssl.SSLContext | bool
    timeout: float = 10.0
    _sessions: dict[str, httpx.Client] = field(default_factory=dict, repr=False)
    _answered: str | None = field(default=None, repr=False)  # the URL that answered last

    @classmethod
    def for_identity(cls, urls: list[str], identity: IdentityDir, timeout: float = 10.0) -> ApiClient:
        return cls(urls, tls_context(identity.ca_cert, identity), timeout)

    def session(self, url: str) -> httpx.Client:
        if url not in self._sessions:
            self._sessions[url] = httpx.Client(
                base_url=url.rstrip("/"), verify=self.context, timeout=_timeout(self.timeout)
            )
        return self._sessions[url]

    def ordered_urls(self) -> list[str]:
        """The configured URLs, the one that answered last first."""
        if self._answered not in self.urls:
            return list(self.urls)
        return [self._answered, *(url for url in self.urls if url != self._answered)]

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        last: errors.ZtosError = errors.Unreachable("no controller URL configured")
        # A POST is resent to the next controller when the connection breaks, and may
        # have been applied already: one key across the attempts makes it apply once.
        headers = {naming.IDEMPOTENCY_HEADER: uuid.uuid4().hex} if method.upper() == "POST" else None
        for url in self.ordered_urls():
            try:
                response = self.session(url).request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=_timeout(timeout or self.timeout),
                )
            except httpx.ConnectError as exc:
                last = _connect_error(url, exc)
                if isinstance(last, errors.Unreachable):
                    continue
                raise last from exc
            except httpx.TransportError as exc:
                last = errors.Unreachable(f"controller {url}: {exc or type(exc).__name__}")
                continue
            self._answered = url
            if response.status_code >= 400:
                raise error_from_response(response)
            return response.json() if response.content else None
        raise last


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


def _connect_error(url: str, exc: httpx.ConnectError) -> errors.ZtosError:
    text = str(exc)
    if "mismatch" in text:
        return errors.PkiError(
            f"controller {url} has a certificate that does not name this host: "
            "start the controller with --san for the address or name in the URL"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return errors.PkiError(f"controller {url} presented a certificate not issued by the pinned CA")
    if "SSL" in text or "alert" in text.lower():
        return errors.Unauthenticated(
            f"controller {url} refused the TLS handshake (client certificate not issued "
            f"by this network's CA, or expired): {text}"
        )
    return errors.Unreachable(f"cannot reach controller {url}: {text}")


def fetch_pinned_ca(urls: list[str], fingerprint: str, timeout: float = 10.0) -> str:
    """Fetch the CA certificate and accept it only if it matches the pinned fingerprint."""
    body = ApiClient(urls, False, timeout).request("GET", "/api/v1/ca")
    cert = pki.cert_from_pem(body["ca_pem"])
    actual = pki.fingerprint(cert)
    if actual != fingerprint:
        raise errors.FingerprintMismatch(
            f"the controller's CA fingerprint is {actual}, but the profile pins {fingerprint}: "
            "wrong controller, or someone in the middle"
        )
    return str(body["ca_pem"])


def verify_profile_signature(profile: Profile, ca_pem: str) -> None:
    signature = profile.signature_bytes()
    if not pki.verify_blob(pki.cert_from_pem(ca_pem), profile.signed_bytes(), signature):
        raise errors.InvalidInput(
            "profile signature does not verify with the network CA: "
            "the profile was altered after the controller issued it"
        )


def controller_urls(profile: Profile) -> list[str]:
    """The profile's URLs, or those its domain's ``_ztos-api._tcp`` SRV records name."""
    if profile.controllers:
        return profile.controllers
    from ztos.discovery.updates import find_controllers  # dnspython: only hosts found by SRV need it

    assert profile.domain and profile.resolver  # the profile model guarantees one or the other
    host, _, port = profile.resolver.rpartition(":")
    server = host.strip("[]")
    urls = [
        url
        for found in find_controllers(profile.domain, server, int(port))
        for url in _addressed(found, server, int(port))
    ]
    if not urls:
        raise errors.Unreachable(f"no _ztos-api._tcp SRV record for {profile.domain} at {profile.resolver}")
    return urls


def _addressed(url: str, server: str, port: int) -> list[str]:
    """The SRV target resolved at the same authoritative server (the host's own
    resolver does not know the overlay zone): one URL per address, IPv6 first."""
    from ztos.discovery.names import as_name
    from ztos.discovery.updates import resolve

    parts = urlsplit(url)
    assert parts.hostname is not None
    name = as_name(parts.hostname + ".")
    v6 = [f"https://[{a}]:{parts.port}" for a in resolve(server, port, name, "AAAA")]
    v4 = [f"https://{a}:{parts.port}" for a in resolve(server, port, name, "A")]
    return v6 + v4 or [url]


@dataclass(frozen=True)
class EnrolOutcome:
    already_enrolled: bool
    identity_name: str
    response: EnrollResponse | None


def enroll_host(
    profile: Profile,
    identity: IdentityDir,
    endpoints: list[str] | None = None,
    listen_port: int = 51820,
    underlay_mtu: int = 1500,
) -> EnrolOutcome:
    """Zero-touch enrolment; a no-op on a host that already holds a certificate."""
    if identity.is_enrolled():
        name = pki.identity_of(identity.certificate()).name
        return EnrolOutcome(True, name, identity.load_enrolment())
    urls = controller_urls(profile)
    ca_pem = fetch_pinned_ca(urls, profile.ca_fingerprint)
    verify_profile_signature(profile, ca_pem)
    identity.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity.ca_cert.write_text(ca_pem)
    key = identity.ensure_tls_key()
    csr = pki.make_csr(key, profile.node_name)
    request = EnrollRequest(
        token=profile.token,
        node_name=profile.node_name,
        csr_pem=csr.public_bytes(Encoding.PEM).decode(),
        wg_public_key=identity.ensure_wg_public_key() if profile.role.value == "node" else None,
        endpoints=endpoints or [],
        listen_port=listen_port,
        underlay_mtu=underlay_mtu,
    )
    client = ApiClient(urls, tls_context(identity.ca_cert, None))
    body = client.request("POST", "/api/v1/enroll", json=request.model_dump(mode="json"))
    response = EnrollResponse.model_validate(body)
    identity.store_enrolment(response)
    return EnrolOutcome(False, profile.node_name, response)
