"""Personal data at rest on the Kafka backend (issue 17; docs/security.md, "Personal data at rest").

Which topics hold payloads, and what bounds how long:

* ``<prefix>.outbound``: every accepted event, payload included. ``retention.ms`` = ``[storage]
  retention`` (it was unlimited): the pump has taken every record in long before (``[storage]
  retention`` is at least ``[retry] give_up_after``, after which an event is delivered,
  superseded, dead-lettered or held in its dossier's state).
* ``<prefix>.retry.<delay>``: events waiting in the ladder; their short retention, at most
  ``[storage] retention``.
* ``<prefix>.dlq`` (compacted, keyed by letter id): a dead event with its payload, for replay.
  When its dossier's final state was delivered more than ``[storage] retention`` ago, the owner of
  the dossier's partition rewrites an open letter without its payload (the list still shows it;
  a replay is ``superseded``) and tombstones a replayed one (:func:`prune_letters`).
* ``<prefix>.dossier-state`` (compacted): a dossier's state holds payloads only while events of it
  are parked or held; a finished dossier's newest state holds none, and its older states go
  with compaction.

Compaction keeps only each key's newest record, but only in closed segments, and only when the
cleaner gets to them: ``segment.ms`` (``[queue.kafka] segment_time``) closes segments,
``max.compaction.lag.ms`` and ``delete.retention.ms`` (``[queue.kafka] compaction_lag``) bound how
long an overwritten record or a tombstone stays; ``file.delete.delay.ms`` how long a cleaned
segment's file stays on disk. :func:`topic_configs` is applied on creation and, for topics made by
an older version, at every start (:func:`apply_configs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config.schema import Settings
from queues.api import FINAL_STATES
from queues.kafka_codec import DossierState, Topics

log = logging.getLogger(__name__)
_WEEK_S = 7 * 86400.0


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


def topic_configs(topics: Topics, settings: Settings) -> dict[str, dict[str, str]]:
    """Each topic's configuration (its whole set: an AlterConfigs request replaces the topic's)."""
    k = settings.queue.kafka
    retention = float(settings.storage.retention)
    segment = float(k.segment_time)
    common = {"segment.ms": _ms(segment), "file.delete.delay.ms": _ms(min(60.0, segment))}
    longest = max(d for d, _ in topics.retry)
    out = {topics.outbound: {**common, "retention.ms": _ms(retention)}}
    for name in topics.retry_names:
        out[name] = {**common, "retention.ms": _ms(min(max(_WEEK_S, 20 * longest), retention))}
    lag = _ms(float(k.compaction_lag))
    for name in (topics.state, topics.dlq):
        out[name] = {**common, "cleanup.policy": "compact", "max.compaction.lag.ms": lag,
                     "delete.retention.ms": lag, "min.compaction.lag.ms": "0"}
    return out


async def apply_configs(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Set ``configs`` on topics that already existed (made by an older version, or with other
    settings). AlterConfigs replaces a topic's whole set, so the topic's other dynamic configs
    (an operator's ``min.insync.replicas`` …) are read first and sent again. A refusal is logged,
    not fatal: the topics still work, only the bounds are not theirs (an operator may manage topic
    configs outside the gateway)."""
    current = await _dynamic_configs(admin, list(configs))
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs={**current.get(name, {}), **cfg})
                 for name, cfg in configs.items()]
    for response in await admin.alter_configs(resources):
        for error_code, message, _type, name in response.resources:
            if error_code:
                log.warning("kafka: could not set the retention configs of topic %s (error %s: %s)",
                            name, error_code, message)


async def _dynamic_configs(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's own (non-default, non-sensitive) configs. DescribeConfigs v0 says "is default"
    (a bool) where v1+ gives the source (1: a dynamic topic config)."""
    out: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]):
        for error_code, _message, _type, name, entries in response.resources:
            if error_code:
                continue
            own = {}
            for entry in entries:
                key, value, source, sensitive = entry[0], entry[1], entry[3], entry[4]
                dynamic = (source is False) if isinstance(source, bool) else source == 1
                if dynamic and not sensitive and value is not None:
                    own[str(key)] = str(value)
            out[str(name)] = own
    return out


def finished_before(st: DossierState | None, before: float) -> bool:
    """Whether a dossier's payloads may go: its final state was delivered before ``before`` and
    nothing of it is pending, in the ladder or held."""
    return (st is not None and st.final_at is not None and st.final_at < before
            and st.delivered_state in FINAL_STATES and not st.pending and not st.ladder and not st.held)


def note_delivered(st: DossierState, snapshot_state: str | None, newer: bool, now: float) -> None:
    """Keep ``final_at``: a delivered snapshot (``snapshot_state``; ``newer`` when it moved the
    delivered state) starts or clears the retention; a later delivered progress item restarts it."""
    if snapshot_state is None or not newer:
        if st.final_at is not None:
            st.final_at = now
        return
    st.final_at = now if snapshot_state in FINAL_STATES else None


Due = Callable[[str], bool]
