"""One module or package per service kind and per repository backend."""
