-- The MES transaction id of a run (route check → upload), so MES and test record join.
ALTER TABLE runs ADD COLUMN mes_transaction_id TEXT;
CREATE INDEX runs_mes_transaction ON runs (mes_transaction_id);
