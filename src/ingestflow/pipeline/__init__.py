"""The pipeline steps: detect, parse, chunk, and the stages that run them durably."""
