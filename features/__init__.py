"""The feature store: registers sql/ views, calendars, quality report, splits."""
