"""How a service is run: local process (the sandbox), docker compose, systemd."""
