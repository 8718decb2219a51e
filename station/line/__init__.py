"""Line integration: many stations, one result database, live status, statistics, MES.

- pg_store.py ``PgResultStore``: the record model on PostgreSQL (psycopg 3), migrated by the
  station (pg_migrate.py, ``migrations/NNNN_*.sql``), idempotent per run id + event seq.
- forwarder.py ``Forwarder``: store-and-forward of finished/interrupted runs from the local
  SQLite journal to PostgreSQL, in order, exactly once, retrying while the database is away.
- mqtt_status.py ``MqttStatus``: retained JSON status topics, last will = offline.
- stats.py: yield, first-pass yield, top failing steps, Cp/Cpk (``station stats``);
  stats_text.py / stats_html.py the text tables and the HTML export with trend plots.
- mes.py: the ``Mes`` interface (route check, upload) with file, HTTP and fake MES.
- config.py / services.py: the config fields and the one object a Session wires in.

psycopg and paho-mqtt are the ``line`` extra: import the submodules you need, not this package
namespace, so a station without them still runs.
"""
