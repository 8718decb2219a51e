-- The stations' hash-chained audit logs (releases, refusals, role denials, log-ins, aborts,
-- make-safe, config changes), forwarded with the results: a copy off the station, so an entry
-- edited or removed there afterwards no longer matches the line's copy.
CREATE TABLE audit_log (
    source text NOT NULL,          -- the station journal whose log it is
    seq integer NOT NULL,          -- the entry's number in that log
    entry_time timestamptz NOT NULL,
    kind text NOT NULL,
    fields jsonb NOT NULL,
    prev text NOT NULL,            -- the previous entry's hash (the chain)
    hash text NOT NULL,
    uploaded_utc timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, seq)
);
CREATE INDEX audit_log_kind_time ON audit_log (kind, entry_time);
