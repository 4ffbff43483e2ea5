"""RFC 3161 time-stamping with ordered failover over ``[signing] tsa_urls``.

Each URL is tried with a timeout and a small number of retries (tenacity); when it keeps
failing the next URL is used. When every URL fails, :class:`AllTsaFailed` is raised. Each
attempt is recorded in :attr:`FailoverTimeStamper.calls` so the parent process can turn the
timings into metrics (the signer runs in a worker process).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from asn1crypto import cms
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed


class AllTsaFailed(TimestampRequestError):
    """No configured TSA produced a valid time-stamp token."""


@dataclass(frozen=True)
class TsaCall:
    url: str
    seconds: float
    ok: bool


class FailoverTimeStamper(TimeStamper):
    """A pyHanko TimeStamper that walks an ordered list of TSA URLs."""

    def __init__(self, urls: tuple[str, ...], session: aiohttp.ClientSession, *, timeout: float,
                 attempts: int = 2, retry_wait: float = 0.05) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._stampers = [(u, HTTPTimeStamper(u, timeout=timeout, session=session)) for u in urls]
        self._attempts = attempts
        self._retry_wait = retry_wait
        self.calls: list[TsaCall] = []

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        """The first valid token from the URLs in order; raises AllTsaFailed when none answers."""
        for url, stamper in self._stampers:
            try:
                token = await self._with_retries(url, stamper, message_digest, md_algorithm)
            except (TimestampRequestError, PyHankoSigningError, ValueError, OSError):
                continue
            return token
        raise AllTsaFailed(f"all {len(self._stampers)} time-stamping authorities failed")

    async def _with_retries(self, url: str, stamper: HTTPTimeStamper, digest: bytes,
                            md_algorithm: str) -> cms.ContentInfo:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts), wait=wait_fixed(self._retry_wait), reraise=True,
            retry=retry_if_exception_type((TimestampRequestError, OSError)),
        )
        async for attempt in retrying:
            with attempt:
                return await self._one_call(url, stamper, digest, md_algorithm)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _one_call(self, url: str, stamper: HTTPTimeStamper, digest: bytes,
                        md_algorithm: str) -> cms.ContentInfo:
        start = time.perf_counter()
        try:
            token = await stamper.async_timestamp(digest, md_algorithm)
        except BaseException:
            self.calls.append(TsaCall(url, time.perf_counter() - start, False))
            raise
        self.calls.append(TsaCall(url, time.perf_counter() - start, True))
        # certificates seen in tokens are needed for B-LT validation paths of the TSA
        self._register_certs(token)
        return token

    def _register_certs(self, token: cms.ContentInfo) -> None:
        from pyhanko.sign.timestamps.common_utils import extract_ts_certs
        for cert in extract_ts_certs(token, self.cert_registry):
            self._certs[cert.issuer_serial] = cert

    def take_calls(self) -> list[TsaCall]:
        """Returns and forgets the attempts recorded so far."""
        calls, self.calls = self.calls, []
        return calls
