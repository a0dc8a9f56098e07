"""The ground floor: what every other package shares (errors, storage, the output protocol).

Imports only the standard library, Beam's ``FileSystems`` and pyarrow; nothing here imports
``filters``, ``pipelines``, ``tokenizer``, ``model``, ``train`` or ``dags``."""
