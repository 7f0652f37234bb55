"""Command-line interface: `counterfeit train|sample|evaluate|presets`."""
