-- Whether a safe-state action was confirmed (acknowledged by the instrument or proved by a
-- read-back); NULL for actions recorded before stations reported it.
ALTER TABLE safe_actions ADD COLUMN confirmed BOOLEAN;
