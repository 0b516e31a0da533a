"""Reports: KPIs, their SVG charts, streamed exports (office roles)."""
