"""The dossier-code rule of spec §8: portal codes for local dossier codes (mapping.py, store.py)."""
