"""Grafana: the dashboard built as code (build.py) and its provisioning files."""
