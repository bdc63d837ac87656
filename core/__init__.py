"""Shared building blocks every stage uses: errors, logging, prompts, workers, files, video I/O."""
