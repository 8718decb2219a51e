-- The mode of the station that ran a run, the sha256 of its station config and the release
-- signature it ran under (NULL for runs recorded before stations reported them).
ALTER TABLE runs ADD COLUMN station_mode TEXT;
ALTER TABLE runs ADD COLUMN config_sha256 TEXT;
ALTER TABLE runs ADD COLUMN release_key TEXT;
ALTER TABLE runs ADD COLUMN release_signature TEXT;
