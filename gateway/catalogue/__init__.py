"""The national procedure catalogue (issue 15 §1): pulled from the portal on a schedule
(:mod:`.service`), kept in its own SQLite file (:mod:`.store`), served to agencies
(:mod:`.routes`) and used by the accept path to fill names (:mod:`.fill`)."""

from gateway.catalogue.service import Catalogue
from gateway.catalogue.store import Procedure

__all__ = ["Catalogue", "Procedure"]
