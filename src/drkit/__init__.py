"""drkit: disaster recovery for a self-hosted backend stack."""

__version__ = "0.1.0"
