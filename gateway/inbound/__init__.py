"""Inbound dossiers (issue 15 §2): pulled from the portal (:mod:`.puller`, cursor in :mod:`.store`,
states through :mod:`.states`), delivered to the provincial system through the jobs outbox
(:mod:`.delivery`, adapters/provincial_system)."""
