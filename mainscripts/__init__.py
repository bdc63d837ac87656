"""One module per command: orchestration and user interaction, no algorithms."""
