"""The machine and the process: files and caches, memory, quiet imports, progress, devices, environment
variables and package versions."""
