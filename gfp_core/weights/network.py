"""Can the hosts that weights come from be reached? One cheap probe per host and process, remembered.

Without a network, ``huggingface_hub`` retries a failed request with back-off for about 23 s and the
release download fails after it, on every load. Instead, before the first download from a host, a
probe connects to it (DNS + TCP, then one ``HEAD /`` that any answer satisfies) within
:func:`probe_timeout` seconds for the connection and as long again for the answer. The verdict is
kept for the rest of the process: an unreachable host fails later loads at once, with the reason.
A reachable host is not probed again; a download from it that still fails to connect marks it
unreachable (:func:`note_failure`). :func:`forget` clears the verdicts (after the network comes back,
in a long-running process). Behind a proxy (``HTTPS_PROXY``, ``ALL_PROXY``, …) the proxy is probed
(connect only) instead of the host.

A probe sends no credentials and does not verify TLS certificates: it only asks whether something
answers. Probes of different hosts run in parallel (:func:`start`), so the worst case of several
blackholed hosts costs one timeout, not one per host.
"""
from __future__ import annotations

import errno
import os
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PROBE_TIMEOUT_S = 1.5
_DEFAULT_PORTS = {"http": 80, "https": 443}


def probe_timeout() -> float:
    """Seconds a probe may take to connect (and again to get an answer): ``GFP_NETWORK_TIMEOUT``, else 1.5."""
    try:
        value = float(os.environ.get("GFP_NETWORK_TIMEOUT", "") or DEFAULT_PROBE_TIMEOUT_S)
    except ValueError:
        return DEFAULT_PROBE_TIMEOUT_S
    return value if value > 0 else DEFAULT_PROBE_TIMEOUT_S


@dataclass(frozen=True)
class Host:
    scheme: str
    host: str
    port: int

    @property
    def label(self) -> str:
        """``huggingface.co``, or ``host:port`` when the port is not the scheme's default."""
        return self.host if _DEFAULT_PORTS.get(self.scheme) == self.port else f"{self.host}:{self.port}"


def host_of(url: str) -> Host:
    parts = urlsplit(url)
    scheme = (parts.scheme or "https").lower()
    return Host(scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 443))


def _proxy_for(host: Host) -> Host | None:
    """The proxy that requests to ``host`` go through, as configured in the environment (or system)."""
    try:
        proxies = urllib.request.getproxies()
        if not proxies or urllib.request.proxy_bypass(host.host):
            return None
    except Exception:  # a malformed proxy setting: let the download itself report it
        return None
    proxy = proxies.get(host.scheme) or proxies.get("all")
    if not proxy:
        return None
    target = host_of(proxy if "://" in proxy else f"http://{proxy}")
    return target if target.host else None


def describe(exc: BaseException, timeout: float | None = None) -> str:
    """A short reason for a connection failure: 'connection refused', 'name lookup failed: …'."""
    if isinstance(exc, socket.gaierror):
        return f"name lookup failed: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Probe:
    """One probe of one host, in a daemon thread; :meth:`wait` returns its verdict within the deadlines
    (connected by ``start + timeout``, answered by ``start + 2 * timeout``) however long DNS hangs."""

    def __init__(self, host: Host, timeout: float) -> None:
        self.host, self.timeout = host, timeout
        self.proxy = _proxy_for(host)
        self.started = time.monotonic()
        self.connected, self.done = threading.Event(), threading.Event()
        self.reason: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"gfp-probe-{host.label}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        target = self.proxy or self.host
        sock: socket.socket | None = None
        try:
            sock = self._connect(target)
            self.connected.set()
            if self.proxy is None:  # ask the host itself for any answer
                sock.settimeout(self.timeout)
                if self.host.scheme == "https":
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    sock = context.wrap_socket(sock, server_hostname=self.host.host)
                sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {self.host.host}\r\nUser-Agent: gfp_core-probe\r\n"
                             f"Connection: close\r\n\r\n".encode("ascii"))
                if not sock.recv(1):
                    raise ConnectionResetError("closed the connection without answering")
        except ssl.SSLEOFError:
            self.reason = "closed the connection without answering"
        except ssl.SSLError:
            pass  # something answered in TLS; the download will say more if it cannot use it
        except (socket.timeout, TimeoutError):
            self.reason = (f"connected, but no answer within {self.timeout:g} s" if self.connected.is_set()
                           else f"no connection within {self.timeout:g} s")
        except BaseException as exc:  # noqa: BLE001 - every failure is a verdict
            self.reason = describe(exc, self.timeout)
            if isinstance(exc, ConnectionResetError) and "without answering" in str(exc):
                self.reason = "closed the connection without answering"
        finally:
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
            self.done.set()

    def _connect(self, target: Host) -> socket.socket:
        """TCP connection to the first address that accepts, IPv4 ones first (a silently dropped IPv6
        route must not use up the time of a working IPv4 one), all within the probe's timeout."""
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        error: BaseException = OSError(f"no address for {target.host}")
        deadline = self.started + self.timeout
        for family, kind, proto, _, address in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out")
            sock = socket.socket(family, kind, proto)
            sock.settimeout(remaining)
            try:
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error

    def wait(self) -> str | None:
        """None if the host answered, else why not."""
        remaining = self.started + self.timeout - time.monotonic()
        if not self.done.wait(max(remaining, 0)) and not self.connected.is_set():
            return f"no connection within {self.timeout:g} s"
        remaining = self.started + 2 * self.timeout - time.monotonic()
        if not self.done.wait(max(remaining, 0)):
            return f"connected, but no answer within {self.timeout:g} s"
        reason = self.reason
        if reason is not None and self.proxy is not None:
            reason = f"proxy {self.proxy.label}: {reason}"
        return reason


_lock = threading.Lock()
_verdicts: dict[Host, str | None] = {}  # host -> None (reachable) or why it is not
_probes: dict[Host, _Probe] = {}


def start(url: str) -> None:
    """Begin probing the host of ``url`` in the background, unless it has a verdict or a probe already."""
    host = host_of(url)
    with _lock:
        if host not in _verdicts and host not in _probes:
            _probes[host] = _Probe(host, probe_timeout())


def unreachable(url: str) -> str | None:
    """Why the host of ``url`` cannot be reached, or None if it can. Probes it the first time only."""
    host = host_of(url)
    with _lock:
        if host in _verdicts:
            return _verdicts[host]
        probe = _probes.get(host)
        if probe is None:
            probe = _probes[host] = _Probe(host, probe_timeout())
    reason = probe.wait()  # outside the lock: other hosts' callers do not wait for this one
    with _lock:
        _probes.pop(host, None)
        return _verdicts.setdefault(host, reason)  # the first verdict stands


def note_failure(url: str, exc: BaseException) -> str | None:
    """If ``exc`` (or what caused it) is a failure to connect, remember the host as unreachable and
    return why; otherwise None (a missing file, an HTTP error: the host answered)."""
    reason = connection_failure(exc)
    if reason is not None:
        with _lock:
            _verdicts[host_of(url)] = reason
    return reason


def note_success(url: str) -> None:
    """The host answered a real request: clear any verdict that says otherwise."""
    with _lock:
        _verdicts[host_of(url)] = None


def forget(url: str | None = None) -> None:
    """Drop the verdict on the host of ``url`` (all hosts if None): the next download probes again."""
    with _lock:
        if url is None:
            _verdicts.clear()
            _probes.clear()
        else:
            _verdicts.pop(host_of(url), None)
            _probes.pop(host_of(url), None)


def verdicts() -> dict[str, str | None]:
    """The remembered verdicts, by host label (None = reachable)."""
    with _lock:
        return {host.label: reason for host, reason in _verdicts.items()}


_NETWORK_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "EHOSTDOWN", "ECONNREFUSED", "ECONNRESET", "ECONNABORTED",
    "ETIMEDOUT") if hasattr(errno, name))
_CONNECT_ERROR_NAMES = frozenset({"ConnectError", "ConnectTimeout", "ProxyError", "NetworkError", "PoolTimeout"})


def connection_failure(exc: BaseException) -> str | None:
    """A short reason if ``exc`` or anything in its cause chain is a failure to reach the host."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason = getattr(current, "reason", None)  # urllib.error.URLError wraps the socket error
        if isinstance(reason, BaseException):
            found = connection_failure(reason)
            if found:
                return found
        if isinstance(current, (socket.gaierror, ConnectionRefusedError, ConnectionResetError, socket.timeout,
                                TimeoutError)):
            return describe(current)
        if isinstance(current, OSError) and current.errno in _NETWORK_ERRNOS:
            return describe(current)
        if any(cls.__name__ in _CONNECT_ERROR_NAMES for cls in type(current).__mro__):
            inner = current.__cause__ or current.__context__
            return (connection_failure(inner) if inner is not None else None) or describe(current)
        current = current.__cause__ or current.__context__
    return None
