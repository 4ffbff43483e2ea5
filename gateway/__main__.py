"""``python -m gateway`` is ``dvcgw``."""

from gateway.cli import main

raise SystemExit(main())
