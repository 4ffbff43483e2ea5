"""The payment platform's three outbound operations: INIT, QUERY, GET_BILL (spec §6, §7, §9).

Each builds its message (:mod:`.envelope`), sends it (:mod:`.transport`) and reads the reply.
Raises only from :mod:`.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.payment_platform import envelope as env
from adapters.payment_platform.envelope import InitRequest, Party, QueryReply
from adapters.payment_platform.transport import Transport
from config.schema import PaymentSettings


class PaymentClient:
    """INIT, QUERY and GET_BILL for one partner, over one transport."""

    def __init__(self, settings: PaymentSettings, transport: Transport) -> None:
        self._s = settings
        self.party = Party(settings.partner_code, settings.secret, settings.version)
        self._transport = transport
        self._fee_types: Mapping[str, str] = {"1": settings.fee_type_fee, "2": settings.fee_type_charge}
        self._extra = {settings.return_url_field: settings.return_url} if settings.return_url else {}

    def init_message(self, req: InitRequest) -> dict[str, object]:
        """The INIT as it will be sent (pure)."""
        return env.build_init(self.party, req, fee_types=self._fee_types, extra=self._extra)

    async def init(self, req: InitRequest) -> tuple[str, str]:
        """Create the transaction: ``(UrlThanhToan, the reply's message)``. Raises PaymentRefused
        (error_code not "0"), PaymentUnavailable (outcome unknown) or PaymentInvalid (bad request)."""
        body = await self._transport.send(self._s.init_url, self.init_message(req), operation="INIT")
        return env.parse_init_reply(body)

    async def query(self, ref: str, thoi_gian: str) -> QueryReply:
        """Ask for a transaction's status. Raises PaymentUnavailable."""
        body = await self._transport.send(self._s.query_url, env.build_query(self.party, ref, thoi_gian),
                                          operation="QUERY")
        return env.parse_query_reply(body)

    async def get_bill(self, ref: str, thoi_gian: str) -> bytes:
        """The platform's receipt PDF. Raises BillNotReady (empty body), PaymentInvalid (not a PDF),
        PaymentUnavailable."""
        body = await self._transport.send(self._s.bill_url, env.build_get_bill(self.party, ref, thoi_gian),
                                          operation="GET_BILL")
        return env.check_pdf(body)
