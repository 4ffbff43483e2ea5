"""``python -m gateway`` is ``dvcgw``.

The guard matters: the signing process pool uses ``spawn``, whose workers import ``__main__``.
"""

from gateway.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
