"""Line integration: many stations, one result database, live status, statistics, MES, SCADA.

- pg_store.py ``PgResultStore``: the record model on PostgreSQL (psycopg 3); stations only
  check the schema (pg_migrate.check), idempotent per run id + event seq.
- pg_migrate.py / pg_admin.py: migrations (``migrations/NNNN_*.sql``), partitions, grants and
  retention — ``station db migrate|retain``, run by an admin role only.
- pg_rows.py: journal events → typed rows (times, limits, genealogy).
- forwarder.py ``Forwarder``: store-and-forward of finished/interrupted runs from the local
  SQLite journal to PostgreSQL, in order, exactly once, retrying while the database is away.
- mes.py / mes_outbox.py: the ``Mes`` interface (route check, upload) with file, HTTP(S) and
  fake MES; uploads queued in the journal and retried.
- mqtt_status.py ``MqttStatus``: retained JSON status topics (schemas in docs/mqtt/).
- opcua_server.py ``OpcUaStatus``: the station's state as an OPC UA server (asyncua).
- line_status.py: ``station line status`` (delivery backlog per target, from the journal).
- export_table.py: ``station results export --format csv|parquet``.
- year_sample.py: a year-shaped sample for sizing (bench/bench_line_year.py).
- stats.py: yield, first-pass yield, top failing steps, Cp/Cpk (``station stats``);
  stats_text.py / stats_html.py the text tables and the HTML export with trend plots.
- config.py / services.py: the config fields and the one object a Session wires in.

psycopg, paho-mqtt, asyncua and pyarrow are the ``line`` extra: import the submodules you
need, not this package namespace, so a station without them still runs.
"""
